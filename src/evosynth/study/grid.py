"""A sweep's grid, read from a small TOML (or JSON) file: every combination of the listed values is one ordinary run.

The file names the axes, not the runs, so that a study of a few hundred runs stays a few lines long::

    name = "seeds"                       # optional: the results table is <runs_dir>/sweeps/<name>.csv (file stem)

    [grid]                               # each key: one value, or a list of values to sweep over
    environment = ["budget", "cost"]
    alpha_cluster = [0.6, 0.9]
    seed = [0, 1]

    [[datasets]]                         # optional, one entry per data set (default: the generated digits)
    data = "pennfudan"
    data_root = "../data/pennfudan/PennFudanPed"   # relative to this file
    preset = "pedestrians"               # a preset belongs to its data set: here or in [grid], not both

A data set's keys (``data``, ``data_root``, ``category``) go together, so they are entries of ``datasets`` rather
than axes of their own (a product of data sets and folders would pair folders with the wrong data set). Keys
left out take ``RunConfig``'s defaults, so a file names only what it varies (``sweeps/default.toml``); the preset
defaults to the first one made for the data set, as in ``evosynth evolve``. Every mistake is refused before
anything runs, naming the file and the key.

The keys, their types, their choices and which table they belong in derive from ``RunConfig``'s fields
(``run_settings``): a new run setting is a new key here without an edit.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evosynth.errors import EvosynthError
from evosynth.study.config import RunConfig, run_settings

# Grid axes and the type of their values, in RunConfig's field order (the order the points are listed in).
AXES: dict[str, type] = {s.name: s.kind for s in run_settings() if "grid" in s.sweep}
DATASET_KEYS: dict[str, type] = {s.name: s.kind for s in run_settings() if "datasets" in s.sweep}
TOP_LEVEL_KEYS = ("name", "grid", "datasets")
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SweepFileError(EvosynthError, ValueError):
    """A sweep file that cannot be read or describes an invalid grid."""


@dataclass(frozen=True)
class SweepGrid:
    """A named list of run configurations, one per grid point, in a stable order (the results table's)."""

    name: str
    source: Path
    points: tuple[RunConfig, ...]

    def with_generations(self, generations: int) -> SweepGrid:
        """The same grid with every run this long (a shorter run is a prefix of a longer one: it resumes)."""
        return replace(self, points=tuple(point.with_generations(generations) for point in self.points))


def load_sweep(path: Path) -> SweepGrid:
    """Read and check a sweep file (``.toml`` or ``.json``)."""
    path = Path(path)
    document = _read(path)
    unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise SweepFileError(f"{path}: unknown key(s) {', '.join(unknown)}; a sweep file has "
                             f"{', '.join(TOP_LEVEL_KEYS)}")
    name = document.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SweepFileError(f"{path}: name must be a file name of letters, digits, '.', '_' and '-', got {name!r}")
    grid = _table(path, "grid", document.get("grid", {}))
    checked = {key: _values(path, key, value) for key, value in grid.items()}
    axes = {key: checked[key] for key in AXES if key in checked}
    datasets = _datasets(path, document.get("datasets", [{"data": "digits"}]), preset_in_grid="preset" in axes)
    points = []
    for dataset, values in itertools.product(datasets, itertools.product(*axes.values())):
        fields = {**dict(zip(axes, values, strict=True)), **dataset}
        try:
            points.append(RunConfig.from_parameters(fields))  # the preset, where unset, as `evosynth evolve` picks it
        except ValueError as error:
            described = ", ".join(f"{key}={value!r}" for key, value in fields.items())
            raise SweepFileError(f"{path}: the grid point ({described}) is invalid: {error}") from None
    _check_distinct_folders(path, points)
    return SweepGrid(name, path, tuple(points))


def _read(path: Path) -> dict[str, Any]:
    if path.suffix not in (".toml", ".json"):
        raise SweepFileError(f"{path}: a sweep file is .toml or .json")
    try:
        text = path.read_text()
    except OSError as error:
        raise SweepFileError(f"{path}: cannot read the sweep file ({error.strerror})") from None
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise SweepFileError(f"{path}: not valid {path.suffix[1:].upper()} ({error})") from None
    return _table(path, "the file", document)


def _table(path: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SweepFileError(f"{path}: {key} must be a table of keys and values, got {value!r}")
    return value


def _known(path: Path, where: str, key: str, types: Mapping[str, type]) -> type:
    if key not in types:
        raise SweepFileError(f"{path}: unknown key {where}; known: {', '.join(types)}")
    return types[key]


def _values(path: Path, key: str, value: Any) -> list[Any]:
    """An axis: one value or a non-empty list of distinct values, each of the key's type."""
    where = f"grid.{key}"
    kind = _known(path, where, key, AXES)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SweepFileError(f"{path}: {where} is an empty list; give at least one value")
    checked = [_typed(path, where, item, kind, key) for item in values]
    if len(set(checked)) != len(checked):
        raise SweepFileError(f"{path}: {where} lists a value twice: {value!r}")
    return checked


def _typed(path: Path, where: str, value: Any, kind: type, key: str) -> Any:
    # bool is an int in Python, but `seed = true` is a mistake; an int is a fine float (alpha = 1).
    accepted = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise SweepFileError(f"{path}: {where} must be {_KIND_NAMES[kind]}, got {value!r}")
    choices = next((s.choices for s in run_settings() if s.name == key), None)  # read now: registries can grow
    if choices is not None and kind(value) not in choices:
        raise SweepFileError(f"{path}: {where} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return kind(value)


def _datasets(path: Path, entries: Any, preset_in_grid: bool) -> list[dict[str, Any]]:
    """The data set entries, their folders made absolute relative to the sweep file."""
    if not isinstance(entries, list) or not entries:
        raise SweepFileError(f"{path}: datasets must be a non-empty list of tables ([[datasets]] entries)")
    datasets = []
    for index, entry in enumerate(entries):
        where = f"datasets[{index}]"
        entry = _table(path, where, entry)
        if "data" not in entry:
            raise SweepFileError(f"{path}: {where} has no data (the data set's name)")
        dataset = {key: _typed(path, f"{where}.{key}", value, _known(path, f"{where}.{key}", key, DATASET_KEYS), key)
                   for key, value in entry.items()}
        if preset_in_grid and "preset" in dataset:
            raise SweepFileError(f"{path}: preset is given in [grid] and in {where}; give it in one place")
        if "data_root" in dataset:
            dataset["data_root"] = str((path.parent / Path(dataset["data_root"]).expanduser()).resolve())
        datasets.append(dataset)
    return datasets


def _check_distinct_folders(path: Path, points: Sequence[RunConfig]) -> None:
    """Two points in one run folder would race for it: a list of generations (not part of a run's identity, as a
    longer run continues a shorter one) or a data set listed twice."""
    repeated = sorted(name for name, count in Counter(point.name for point in points).items() if count > 1)
    if repeated:
        raise SweepFileError(f"{path}: several grid points share the run folder {repeated[0]}; generations is not "
                             "part of a run's identity, so give it one value, and list each data set once")
