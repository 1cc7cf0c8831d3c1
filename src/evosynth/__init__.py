"""evosynth: evolutionary synthesis of deep neural networks under synaptic precision restrictions.

For any PyTorch network: ``evosynth.synthesize(model, example_inputs, environment, seed=..., generation=...)``
returns one offspring (``core.offspring``), and ``evosynth.evolve(build_ancestor, train, evaluate, ...)`` runs a
resumable evolution of it in a run folder (``study.any_network``); ``evosynth.Environment`` is F(alpha).

Layers, bottom up (docs/architecture.md; a module imports only its own layer or lower ones):
``errors``, ``files`` and ``paths``; ``core``, the paper's ideas (genetic encoding, environment, the channel graph,
synthesis and pruning deciders, compaction, precision); ``task`` (data, detector, networks, training, metrics);
``storage.runs`` (run folders); ``deploy`` (export, benchmark); ``study`` (run settings, evolution, comparisons,
sweeps); ``book`` (the Papermill batch and the pages' helpers); ``cli``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Environment", "evolve", "synthesize"]


def __getattr__(name: str) -> Any:
    """The public entry points, imported when first used (``import evosynth`` stays light)."""
    if name == "synthesize":
        from evosynth.core.offspring import synthesize

        return synthesize
    if name == "evolve":
        from evosynth.study.any_network import evolve

        return evolve
    if name == "Environment":
        from evosynth.core.environment import Environment

        return Environment
    raise AttributeError(f"module 'evosynth' has no attribute {name!r}")
