"""The book: the Papermill batch (``batch``), the offline Altair renderer and vendored JavaScript (``offline``),
the charts and the helpers the pages compute with, and the pages live in JupyterLab (``lab``)."""
