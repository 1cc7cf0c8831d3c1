"""What each book page computes, one module per page (``notebooks/<page>.md``): the notebooks only call these
functions and never repeat the model's logic. What every page shares is in ``evosynth.book.display``."""
