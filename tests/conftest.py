from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from evosynth.cli import main
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated smoke data set shared by the whole session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[RunConfig, Path]:
    """A finished 2-generation smoke run that tests may read but must not modify."""
    config = RunConfig(preset="smoke", generations=2)
    out = tmp_path_factory.mktemp("runs") / "smoke"
    evolve(config, out, data_dir)
    return config, out


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> Callable[[Sequence[str]], tuple[int, str]]:
    """``evosynth <arguments>`` run in this process through the CLI's ``main``: its exit code (argparse's usage
    errors included) and what it wrote to stderr. Saves the 2-3 s a subprocess spends importing torch."""
    def run(arguments: Sequence[str]) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main(list(arguments))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        return code, capsys.readouterr().err
    return run
