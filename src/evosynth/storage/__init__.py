"""Storage: ``files`` (atomic writes, folder locks, JSON: below everything) and ``runs`` (a run folder and its
generations' files, read back into networks)."""
