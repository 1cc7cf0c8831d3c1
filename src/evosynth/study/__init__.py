"""The study: run settings and presets, the evolution driver, comparisons, capacity, sweeps and their report, the
paper's reported numbers (``paper``) and the rules that judge a run against them (``verdict``)."""
