"""User-facing errors: the CLI prints these as one clear message, never a traceback."""


class SegloopError(Exception):
    """A mistake in the user's input (params, paths, data) that segloop can explain."""


class ParamsError(SegloopError):
    """params.yaml (or an override) is malformed, mistyped, or names an unknown key."""


class DataError(SegloopError):
    """A dataset file is missing, unreadable, or inconsistent with its partner file."""
