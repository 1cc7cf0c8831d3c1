"""evosynth: evolutionary synthesis of deep neural networks under synaptic precision restrictions.

Layers, bottom up (docs/architecture.md; a module imports only its own layer or lower ones):
``errors`` and ``files`` (atomic writes, locks, JSON); ``core``, the paper's ideas (genetic encoding,
environment, synthesis and pruning deciders, compaction, precision); ``task`` (data, detector, training,
metrics); ``storage.runs`` (run folders); ``deploy`` (export, benchmark); ``study`` (run settings, evolution,
comparisons, sweeps); ``book`` (the Papermill batch and the pages' helpers); ``cli``.
"""

__version__ = "0.1.0"
