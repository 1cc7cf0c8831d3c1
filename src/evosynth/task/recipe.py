"""How a run folder rebuilds any generation's network: the ancestor's builder (a name in ``BUILDERS`` or an
importable ``package.module:function``) and its JSON arguments, the example input the graph is traced on, and the
pruning history (Torch-Pruning's, JSON) that leads from the ancestor to the generation. Building calls the builder
and replays the history; the generation's weights are loaded after. Nothing is unpickled.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from evosynth.core.graph import GraphError, replay
from evosynth.task.detectors import InceptionDetector, ResidualDetector
from evosynth.task.model import Architecture, GridDetector
from evosynth.task.networks import NETWORKS


def grid_detector(**arguments: Any) -> GridDetector:
    """The study's chain detector, from its ``Architecture``'s JSON."""
    return GridDetector(Architecture.from_json(arguments))


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **NETWORKS, "grid_detector": grid_detector, "inception_detector": InceptionDetector,
    "residual_detector": ResidualDetector,
}


def builder_name(build_ancestor: str | Callable[..., nn.Module]) -> str:
    """How a run folder names its ancestor's builder: a ``BUILDERS`` name, or ``package.module:function``."""
    if isinstance(build_ancestor, str):
        resolve_builder(build_ancestor)  # refuses one that cannot be found, before anything is written
        return build_ancestor
    for name, known in BUILDERS.items():
        if known is build_ancestor:
            return name
    module, qualname = getattr(build_ancestor, "__module__", None), getattr(build_ancestor, "__qualname__", "")
    if not module or "<" in qualname:
        raise GraphError(f"build_ancestor {build_ancestor!r} cannot be found again by a run folder: give a name of "
                         f"{', '.join(BUILDERS)} or an importable 'package.module:function'")
    name = f"{module}:{qualname}"
    resolve_builder(name)
    return name


def resolve_builder(name: str) -> Callable[..., nn.Module]:
    """The builder a recipe names."""
    if name in BUILDERS:
        return BUILDERS[name]
    module_name, _, qualname = name.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise GraphError(f"the ancestor's builder {name!r} is neither one of {', '.join(BUILDERS)} nor an "
                         f"importable 'package.module:function' ({error})") from None
    if not callable(found):
        raise GraphError(f"the ancestor's builder {name!r} is not callable")
    return found  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Recipe:
    """How to build a generation's network: the ancestor's builder and arguments, the example input the graph is
    traced on, and the pruning history from the ancestor to this generation."""

    builder: str
    arguments: dict[str, Any]
    input_shape: tuple[int, ...]
    history: list[Any] = field(default_factory=list)

    def example_inputs(self) -> torch.Tensor:
        return torch.zeros(self.input_shape)

    def ancestor(self) -> nn.Module:
        return resolve_builder(self.builder)(**self.arguments)

    def build(self) -> nn.Module:
        """The network, weights still the builder's: the ancestor cut as the history says."""
        with torch.random.fork_rng():  # building draws initial weights: the caller's random stream stays as it was
            model = self.ancestor()
        return replay(model, self.example_inputs(), self.history)

    def descendant(self, history: list[Any]) -> Recipe:
        """The recipe of a network cut further by ``history`` (the pruning history from this one)."""
        return replace(self, history=[*self.history, *history])

    def to_json(self) -> dict[str, Any]:
        return {"builder": self.builder, "arguments": self.arguments, "input_shape": list(self.input_shape),
                "history": self.history}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recipe:
        try:
            return cls(str(data["builder"]), dict(data["arguments"]), tuple(int(n) for n in data["input_shape"]),
                       list(data.get("history", [])))
        except (KeyError, TypeError, ValueError) as error:
            raise GraphError(f"a network recipe is incomplete or malformed: {error}") from error
