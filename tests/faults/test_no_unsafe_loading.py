"""Nothing in src/ can execute code from a file: no pickle (or its relatives), no torch.load without
weights_only=True, no eval/exec, no pickle-enabled numpy/pandas/yaml loading. The scanner reads the syntax tree,
so comments and strings that mention these names do not count, and aliases do not hide them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "pandas.read_pickle", "yaml.unsafe_load", "torch.jit.load"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """The full dotted name of a call target, with import aliases resolved (``np.load`` -> ``numpy.load``)."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value, aliases)}.{node.attr}"
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_uses(code: str) -> list[str]:
    """Each unsafe use in ``code`` as 'line N: what'."""
    tree = ast.parse(code)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:  # import a.b as c: c means a.b
                    aliases[alias.asname] = alias.name
                else:  # import a.b: binds a
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name in UNSAFE_CALLS:
            found.append(f"line {node.lineno}: {name}()")
        elif name == "torch.load" and not _keyword_is_true(node, "weights_only"):
            found.append(f"line {node.lineno}: torch.load without weights_only=True")
        elif name == "numpy.load" and _keyword_is_true(node, "allow_pickle"):
            found.append(f"line {node.lineno}: numpy.load(allow_pickle=True)")
        elif name == "yaml.load" and not any(k.arg == "Loader" and "Safe" in _dotted(k.value, aliases)
                                             for k in node.keywords):
            found.append(f"line {node.lineno}: yaml.load without a SafeLoader")
    return found


@pytest.mark.parametrize(
    "code",
    [
        "import pickle",
        "import cloudpickle as cp",
        "from shelve import open",
        "import torch\ntorch.load('x.pt')",
        "import torch as t\nt.load('x.pt', weights_only=False)",
        "from torch import load\nload('x.pt')",
        "eval(open('f').read())",
        "exec(text)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import pandas as pd\npd.read_pickle('f')",
        "import yaml\nyaml.load(text)",
    ],
)
def test_the_scanner_finds_unsafe_loading(code):
    assert unsafe_uses(code), code


@pytest.mark.parametrize(
    "code",
    [
        "import torch\ntorch.load('x.pt', weights_only=True)",
        "import numpy as np\nnp.load('a.npy')",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "text = 'pickle eval exec'  # mentions are not uses",
        "model.eval()",
    ],
)
def test_the_scanner_accepts_safe_code(code):
    assert unsafe_uses(code) == []


def test_no_unsafe_loading_in_src():
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 10, f"found too few sources under {SOURCE}"
    problems = [f"{path.relative_to(SOURCE)} {use}" for path in files for use in unsafe_uses(path.read_text())]
    assert problems == []
