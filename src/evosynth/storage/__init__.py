"""Storage: a run folder and its generations' files (``runs``), read back into networks; written through
``evosynth.files`` (atomic writes, folder locks, JSON)."""
