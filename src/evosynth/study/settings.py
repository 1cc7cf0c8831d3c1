"""Settings declared once, as the fields of a frozen dataclass (in the manner of open_lth's ``hparams``).

``setting`` is a field with what the front ends need to know of it: its help text, its choices and how it enters a
run's identity and the sweep files. ``settings_of`` reads them back, and ``add_arguments`` turns them into command
line options, so that a new setting is one field and its default is written in that field only.
"""

from __future__ import annotations

import argparse
import functools
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

# How a setting enters a run's identity: always; only where it differs from its default (so that a run that does
# not use it has the identity, name and ancestor it has without it); only where it differs from the value its
# preset gives it (the same, for a setting whose default is the preset's); or never (how many generations run).
IdentityRule = Literal["always", "unless_default", "unless_preset", "never"]
# The tables of a sweep file a setting's key may appear in: an axis of [grid], or a key of a [[datasets]] entry.
SweepTable = Literal["grid", "datasets"]


def setting(
    default: Any,
    help: str,
    *,
    choices: Collection[Any] | None = None,
    flag: str | None = None,
    identity: IdentityRule = "always",
    ancestor: bool = False,
    sweep: tuple[SweepTable, ...] = ("grid",),
    fallback: Callable[[Mapping[str, Any]], Any] | None = None,
) -> Any:
    """A settings field and what the front ends derive from it.

    ``help``: the CLI option's help text (the command line adds the default). ``choices``: the allowed values (their
    registry, read when used). ``flag``: the CLI option (``--`` and the name with dashes). ``identity``: see
    ``IdentityRule``. ``ancestor``: generation 1 depends on it. ``sweep``: see ``SweepTable``. ``fallback``: where
    a front end leaves the setting unset (None), its value is ``fallback(the other settings)``, not the default.
    """
    metadata = {"help": help, "choices": choices, "flag": flag, "identity": identity, "ancestor": ancestor,
                "sweep": sweep, "fallback": fallback}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Setting:
    """One setting, as its dataclass declares it: its field, type and ``setting`` metadata."""

    name: str
    kind: type  # str, int or float; the value may also be None where the default is
    default: Any
    help: str
    choices: Collection[Any] | None  # the registry itself, read when used: a registered entry counts
    flag: str
    identity: IdentityRule
    ancestor: bool
    sweep: tuple[SweepTable, ...]
    fallback: Callable[[Mapping[str, Any]], Any] | None


def _value_type(annotation: Any) -> type:
    """``float`` of ``float``, ``str`` of ``str | None``."""
    if isinstance(annotation, types.UnionType):
        [kind] = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kind
    return annotation


@functools.cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """A settings dataclass's settings in field order (the order of the CLI options, parameters and sweep axes)."""
    hints = get_type_hints(cls)
    return tuple(
        Setting(name=f.name, kind=_value_type(hints[f.name]), default=f.default, help=f.metadata["help"],
                choices=f.metadata["choices"], flag=f.metadata["flag"] or "--" + f.name.replace("_", "-"),
                identity=f.metadata["identity"], ancestor=f.metadata["ancestor"], sweep=f.metadata["sweep"],
                fallback=f.metadata["fallback"])
        for f in fields(cls)
    )


def settled_values(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``cls`` for the settings in ``values`` (parsed CLI options, a notebook's globals, a
    sweep-file point; other keys are ignored): one missing takes its default, and one with a fallback that is
    missing or None takes the fallback's value."""
    settings = settings_of(cls)
    given = {s.name: values[s.name] for s in settings
             if s.name in values and not (s.fallback is not None and values[s.name] is None)}
    settled = {s.name: given.get(s.name, s.default) for s in settings}
    for s in settings:
        if s.fallback is not None and s.name not in given:
            given[s.name] = s.fallback(settled)
    return given


def add_arguments(cls: type, parser: argparse.ArgumentParser) -> None:
    """A CLI option per setting: its flag, type, default (None where it has a fallback), choices and help."""
    for s in settings_of(cls):
        options: dict[str, Any] = {"type": s.kind, "default": None if s.fallback else s.default, "help": s.help}
        if s.choices is not None:
            options["choices"] = list(s.choices)
        else:
            options["metavar"] = s.flag.removeprefix("--").upper().replace("-", "_")
        parser.add_argument(s.flag, dest=s.name, **options)
