"""Errors with the same stable codes as the Node side (src/errors.ts).

Match on ``code`` or the class, never on the message text.
"""

import builtins


class NpipeError(Exception):
    code = "ERR_NPIPE_SYSTEM"

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFifoError(NpipeError):
    code = "ERR_NPIPE_NOT_FIFO"


class UnsafeFifoError(NpipeError):
    code = "ERR_NPIPE_UNSAFE"


class FifoNotFoundError(NpipeError):
    code = "ERR_NPIPE_NOT_FOUND"


class FifoPermissionError(NpipeError):
    code = "ERR_NPIPE_PERMISSION"


class TimeoutError(NpipeError, builtins.TimeoutError):  # noqa: A001 - the Node name; `except TimeoutError` (builtin) catches it too
    code = "ERR_NPIPE_TIMEOUT"


class NoReaderError(NpipeError):
    code = "ERR_NPIPE_NO_READER"


class FrameTooLargeError(NpipeError):
    code = "ERR_NPIPE_FRAME_TOO_LARGE"


class BadFrameError(NpipeError):
    code = "ERR_NPIPE_BAD_FRAME"


class ClosedError(NpipeError):
    code = "ERR_NPIPE_CLOSED"


class InvalidArgumentError(NpipeError, ValueError):
    code = "ERR_NPIPE_INVALID_ARG"


class SystemError(NpipeError):  # noqa: A001
    code = "ERR_NPIPE_SYSTEM"


class BusyError(NpipeError):
    code = "ERR_NPIPE_BUSY"


class ServerGoneError(NpipeError):
    code = "ERR_NPIPE_SERVER_GONE"


class RemoteError(NpipeError):
    """The server's handler failed: ``code`` is ERR_NPIPE_REMOTE, ``remote_code``
    the handler error's code (or ERR_NPIPE_REMOTE when it had none)."""

    code = "ERR_NPIPE_REMOTE"

    def __init__(self, message, remote_code="ERR_NPIPE_REMOTE"):
        super().__init__(message)
        self.remote_code = remote_code
