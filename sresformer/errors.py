"""Errors a user can cause and fix: the CLI turns each into one line on stderr and exit 2."""


class UserError(Exception):
    """Bad input from the user (a file, a name, a shape). The message says what to do."""


class UnknownModelError(UserError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, foreign or does not match the model."""


class UncalibratedError(UserError, RuntimeError):
    """A DSSA layer asked for its scaling factors before any firing rate was measured."""


class OutputError(UserError):
    """An output path that cannot be written, or that would replace one of the command's inputs."""
