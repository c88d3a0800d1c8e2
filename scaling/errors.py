"""Bad input and the exit codes of ``scale``."""

EXIT_OK, EXIT_POINTS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(ValueError):
    """A mistake in what the user asked for: reported in one line, exit code 2."""
