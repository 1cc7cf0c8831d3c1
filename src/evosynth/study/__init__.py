"""The study: run settings and presets, the evolution driver, comparisons, capacity, sweeps and their report."""
