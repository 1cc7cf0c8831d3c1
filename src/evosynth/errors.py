"""Errors that name the problem and the fix; the CLI prints them without a traceback."""


class EvosynthError(Exception):
    """A user-facing problem: bad input, a damaged run folder, a mismatched configuration."""


class CheckpointError(EvosynthError):
    """A generation's files are missing, truncated, corrupt or inconsistent."""


class ConfigMismatchError(EvosynthError):
    """A run folder holds a run of a different configuration."""


class FolderLockedError(EvosynthError):
    """Another process is writing the folder (a run, a cache) right now."""


class DataSetError(EvosynthError):
    """A data set's folder or archive is missing, incomplete or malformed."""
