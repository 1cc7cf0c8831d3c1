"""The study: run configuration and presets, artifacts on disk, the evolution driver, the book."""
