"""The alpha explorer's computations."""

from __future__ import annotations

from conftest import sweep_frame
from evosynth.book.pages import explorer as explorer_page


def test_final_generations():
    final = explorer_page.final_generations(sweep_frame())
    assert list(final["alpha_cluster"]) == [0.6, 0.9]
    assert list(final["generation"]) == [3, 3]
    assert list(final["synapses"]) == [100, 500]
