"""npipe from Python: the formats of docs/FORMATS.md and docs/PROTOCOL.md over
FIFOs, talking to the Node npipe (or to another Python process).

    import npipe
    with npipe.open_sender("/tmp/jobs") as s:       # frames, the default
        s.send(b"hello")
    with npipe.open_receiver("/tmp/jobs") as r:
        for message in r:
            print(message)

Request/reply: connect() (a client) and serve() (a server), for peers in either language:

    npipe.serve("/tmp/upper", lambda data: data.upper())     # until Ctrl-C
    with npipe.connect("/tmp/upper") as c:
        print(c.request(b"hi", timeout=5))

Standard library only.
"""

from .errors import (
    BadFrameError,
    BusyError,
    RemoteError,
    ServerGoneError,
    ClosedError,
    FifoNotFoundError,
    FifoPermissionError,
    FrameTooLargeError,
    InvalidArgumentError,
    NoReaderError,
    NotFifoError,
    NpipeError,
    SystemError,
    TimeoutError,
    UnsafeFifoError,
)
from .fifo import Receiver, Sender, mkfifo_exact, open_receiver, open_sender
from .client import Client, connect
from .server import RequestContext, Server, print_event, serve
from .formats import DEFAULT_MAX_MESSAGE_SIZE, FORMATS, PIPE_BUF, decoder, encoder

__version__ = "0.1.0"

__all__ = [
    "open_sender", "open_receiver", "connect", "Client", "serve", "Server", "RequestContext", "print_event", "Sender", "Receiver", "mkfifo_exact",
    "encoder", "decoder", "PIPE_BUF", "DEFAULT_MAX_MESSAGE_SIZE", "FORMATS",
    "NpipeError", "NotFifoError", "UnsafeFifoError", "FifoNotFoundError", "FifoPermissionError",
    "TimeoutError", "NoReaderError", "FrameTooLargeError", "BadFrameError", "ClosedError",
    "InvalidArgumentError", "SystemError", "BusyError", "RemoteError", "ServerGoneError",
]
