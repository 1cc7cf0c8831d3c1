from pathlib import Path

import pytest

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
