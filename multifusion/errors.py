"""The project's exceptions: one type for bad user input, one for running out of device memory."""


class MultiFusionError(Exception):
    """Base class of the errors a user can act on (the UI shows their message, the CLI prints it)."""


class PromptError(MultiFusionError, ValueError):
    """A prompt, image or setting was rejected before any model ran; the message names what and why."""


class OutOfMemoryError(MultiFusionError, RuntimeError):
    """The accelerator ran out of memory; the message says what to reduce."""
