"""A run on disk: ``config.json`` and one ``gen_NN/`` folder per generation.

Every file is written atomically (temporary file, fsync, rename), and ``metrics.json`` is written last, so a
generation is finished exactly when its ``metrics.json`` exists; anything else is an unfinished generation that
the driver discards and redoes. Weights and masks are safetensors, descriptions JSON: nothing is unpickled.
A writer holds the folder's ``.lock`` (an OS file lock, released by the kernel even when the process is killed),
so two processes never interleave their generations in one folder.
"""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from evosynth.core.graph import GraphError
from evosynth.errors import CheckpointError, ConfigMismatchError
from evosynth.files import atomic_write, exclusive, read_json, write_json
from evosynth.task.recipe import Recipe

WEIGHTS = "weights.safetensors"
ARCHITECTURE = "architecture.json"
CURVE = "curve.json"
METRICS = "metrics.json"
CONFIG = "config.json"
# The layout of config.json (its identity's keys included); a folder of another version, or of none, is refused
# rather than read. Raise it with any change to what a run folder holds or how its identity is keyed.
FORMAT_VERSION = 4  # 4: every architecture.json is a recipe (the ancestor's builder, its pruning history)
MASK_PREFIX = "mask:"
Model = TypeVar("Model", bound=nn.Module)


def _copy_bytes(source: Path, destination: Path) -> None:
    destination.write_bytes(source.read_bytes())


@dataclass
class Generation(Generic[Model]):
    """One finished generation: its (restricted) network, masks, metrics, training curve, and the recipe that
    rebuilds its network (the ancestor's builder and the pruning history from it)."""

    number: int
    model: Model
    masks: dict[str, torch.Tensor]
    metrics: dict[str, Any]
    curve: dict[str, Any]
    recipe: Recipe


class RunFolder:
    """The folder of one run configuration; refuses to mix runs of different configurations."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def locked(self, *, wait: bool = False) -> AbstractContextManager[None]:
        """The folder's write lock (see ``atomic.exclusive``); without ``wait`` a folder in use is refused."""
        return exclusive(self.root, wait=wait, advice="wait for it to finish or choose another --out folder")

    def generation_dir(self, number: int) -> Path:
        return self.root / f"gen_{number:02d}"

    def bind(self, identity: dict[str, Any], generations: int | None = None) -> None:
        """Create the run or check that the existing one has the same identity (everything but its length).

        An existing file is not rewritten here: a command that fails later leaves it as it was. The stored length
        grows with ``extend_to`` once the generations exist.
        """
        path = self.root / CONFIG
        identity = json.loads(json.dumps(identity))  # compare in JSON form: tuples become lists on disk
        if path.exists():
            differences = self.identity_differences(identity)
            if differences:
                raise ConfigMismatchError(
                    f"{self.root} holds a run with a different configuration (differs in: {', '.join(differences)}); "
                    "choose another --out folder or delete that one"
                )
            return
        if any(self.root.glob("gen_*")):
            raise CheckpointError(
                f"{path} is missing, so the generations in {self.root} cannot be checked against this "
                "configuration; restore that file, or delete the folder to start over"
            )
        config = {**identity, "generations": generations} if generations is not None else identity
        write_json(path, {"format_version": FORMAT_VERSION, "identity": identity, "config": config})

    def identity_differences(self, identity: dict[str, Any]) -> list[str]:
        """The keys in which the stored run's identity differs from ``identity`` (empty: the same run).

        Raises CheckpointError when config.json is missing, unreadable, not a run configuration or of another
        format version."""
        stored_identity = self._read_config()["identity"]
        identity = json.loads(json.dumps(identity))
        return sorted(k for k in set(identity) | set(stored_identity) if identity.get(k) != stored_identity.get(k))

    def extend_to(self, generations: int) -> None:
        """Record the run's length as the longest ever finished, so computing an early generation never shrinks
        it."""
        stored = self.stored_config()
        if generations > (stored["config"].get("generations") or 0):
            stored["config"]["generations"] = generations
            write_json(self.root / CONFIG, stored)

    def stored_config(self) -> dict[str, Any]:
        if not (self.root / CONFIG).is_file():
            raise CheckpointError(
                f"{self.root} is not a run folder (it has no {CONFIG}); give a folder written by `evosynth evolve`, "
                "such as runs/<run name>"
            )
        return self._read_config()

    def _read_config(self) -> dict[str, Any]:
        """config.json, checked: a run configuration (it has an identity) of this format version."""
        path = self.root / CONFIG
        stored = read_json(path)
        if not isinstance(stored, dict) or not isinstance(stored.get("identity"), dict):
            raise CheckpointError(f"{path} is not a run configuration (no identity); restore it or delete the run")
        version = stored.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            found = "has no format_version" if version is None else f"has format_version {version!r}"
            raise CheckpointError(
                f"{path} {found}; this evosynth reads run folders of format_version {FORMAT_VERSION} only: delete "
                f"{self.root} to compute the run again"
            )
        return stored

    def check_lineage(self) -> None:
        """Refuse a folder whose finished generations have a gap: a later generation bred from a parent that is
        no longer marked finished cannot be trusted, and redoing the parent would silently orphan it."""
        finished = self.finished()
        gaps = sorted(set(range(1, max(finished, default=0) + 1)) - set(finished))
        if gaps:
            missing = ", ".join(str(self.generation_dir(n) / METRICS) for n in gaps)
            raise CheckpointError(
                f"{self.root}: generation {gaps[0]} is unfinished (missing {missing}) but generation {max(finished)} "
                f"is finished; restore that file, or delete {self.generation_dir(gaps[0]).name} and every later "
                "generation to redo them"
            )

    def adopt(self, number: int, source: RunFolder, source_number: int, metrics_update: dict[str, Any]) -> None:
        """Copy a finished generation from another run folder (metrics last, so a crash leaves it unfinished)."""
        origin, target = source.generation_dir(source_number), self.generation_dir(number)
        for name in (WEIGHTS, ARCHITECTURE, CURVE):
            atomic_write(target / name, partial(_copy_bytes, origin / name))
        write_json(target / METRICS, {**read_json(origin / METRICS), **metrics_update})

    def finished(self) -> list[int]:
        numbers = []
        for child in sorted(self.root.glob("gen_*")):
            if (child / METRICS).is_file() and child.name[4:].isdigit():
                numbers.append(int(child.name[4:]))
        return numbers

    def load_finished(self, kind: type[Model] = nn.Module) -> list[Generation[Model]]:  # type: ignore[assignment]
        """Every finished generation, in order."""
        return [self.load(number, kind) for number in self.finished()]

    def metrics(self, number: int) -> dict[str, Any]:
        """A generation's metrics.json, without building its network."""
        return read_json(self.generation_dir(number) / METRICS)

    def is_finished(self, number: int) -> bool:
        return (self.generation_dir(number) / METRICS).is_file()

    def discard_unfinished(self, number: int) -> None:
        directory = self.generation_dir(number)
        if directory.exists() and not self.is_finished(number):
            shutil.rmtree(directory)

    def save(
        self,
        number: int,
        restricted_state: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        recipe: Recipe,
        curve: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        directory = self.generation_dir(number)
        tensors = {name: t.contiguous() for name, t in restricted_state.items()}
        tensors.update({MASK_PREFIX + name: m.to(torch.bool).contiguous() for name, m in masks.items()})
        atomic_write(directory / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        layers = {name: {"shape": list(m.shape), "synapses": int(m.sum())} for name, m in masks.items()}
        write_json(directory / ARCHITECTURE, {**recipe.to_json(), "layers": layers})
        write_json(directory / CURVE, curve)
        write_json(directory / METRICS, metrics)

    def load(self, number: int, kind: type[Model] = nn.Module) -> Generation[Model]:  # type: ignore[assignment]
        """A finished generation: its recipe's network (the ancestor built, its pruning history replayed), which
        must be a ``kind``, filled with the stored weights and checked against the stored masks."""
        directory = self.generation_dir(number)
        if not directory.is_dir():
            raise CheckpointError(f"generation {number} does not exist in {self.root}")
        metrics = read_json(directory / METRICS)
        curve = read_json(directory / CURVE)
        try:
            recipe = Recipe.from_json(read_json(directory / ARCHITECTURE))
            model = recipe.build()
        except GraphError as error:
            raise CheckpointError(f"{directory / ARCHITECTURE} cannot be rebuilt: {error}") from error
        if not isinstance(model, kind):
            raise CheckpointError(f"{directory / ARCHITECTURE} builds a {type(model).__name__}, not a {kind.__name__}")
        state, masks = self._tensors(number)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(
                f"{directory / WEIGHTS} does not match {directory / ARCHITECTURE}: {str(error).splitlines()[0]}"
            ) from error
        shapes = {name: tuple(parameter.shape) for name, parameter in model.named_parameters()}
        if any(shapes.get(name) != tuple(mask.shape) for name, mask in masks.items()):
            raise CheckpointError(f"{directory / WEIGHTS}: masks do not match the architecture's layers")
        return Generation(number, model.eval(), masks, metrics, curve, recipe)

    def _tensors(self, number: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """A generation's stored state (FP32) and masks, checked to be readable and finite."""
        directory = self.generation_dir(number)
        weights_path = directory / WEIGHTS
        if not weights_path.is_file():
            raise CheckpointError(f"{weights_path} is missing; delete {directory} to redo generation {number}")
        try:
            tensors = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"{weights_path} is corrupt or truncated ({error}); delete {directory} to redo generation {number}"
            ) from error
        masks = {k.removeprefix(MASK_PREFIX): v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
        state = {k: v.to(torch.float32) if v.is_floating_point() else v
                 for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
        for name, tensor in state.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise CheckpointError(f"{weights_path}: {name} contains NaN or Inf; this generation cannot be a parent")
        return state, masks
