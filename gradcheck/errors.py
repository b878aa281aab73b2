"""The errors the command line reports as bad input (exit 2); importing them loads no torch,
so the figure commands start in about a second."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or of the wrong kind."""


class GuidanceError(FloatingPointError):
    """The classifier gradient is not finite."""
