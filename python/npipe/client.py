"""Request/reply, the client side (docs/RPC.md): ``connect(path)`` to a server,
Node's (``serve``, ``npipe serve``) or Python's (npipe.serve).

The client is synchronous: one ``request()`` at a time (a second one from another
thread while one waits raises BusyError).
"""

import errno
import os
import struct
import threading
import time

from .errors import (
    BusyError,
    ClosedError,
    FifoNotFoundError,
    FrameTooLargeError,
    NoReaderError,
    NpipeError,
    ServerGoneError,
    TimeoutError,
)
from .fifo import mkfifo_exact, open_receiver, open_sender
from .protocol import (
    CANCEL, DEFAULT_RPC_MAX_MESSAGE, ERROR, LIMITED_REQUEST, REPLY, SIZE, SIZE_THRESHOLD,
    decode_error, encode_request,
)
from .replydir import ensure_reply_directory, process_gone, remove_stale_reply_fifos

# How often a waiting client checks that its server is still there (as Node: 250 ms).
SERVER_CHECK = 0.25


class Client:
    """A connection to a request/reply server; ``request(data, timeout=None) -> bytes``."""

    def __init__(self, path, sender, replies, reply_path, timeout, max_message_size):
        self.path = path
        self._sender = sender
        self._replies = replies
        self.reply_path = reply_path
        self._address = reply_path.encode("utf-8")
        self._timeout = timeout
        self._limit = max_message_size
        self._next_id = 1
        self._server_pid = 0
        self._lock = threading.Lock()
        self._closed = False

    def _server_gone(self):
        if self._server_pid and process_gone(self._server_pid):
            return True
        try:  # a write end opens only while some process has the server's FIFO open for reading
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            return e.errno in (errno.ENXIO, errno.ENOENT)
        os.close(fd)
        return False

    def request(self, data, timeout=None):
        """Sends `data` (bytes; str as UTF-8) and returns the reply's bytes.

        Raises RemoteError (ERR_NPIPE_REMOTE, the handler's code in
        ``remote_code``), TimeoutError (the request is then cancelled on the
        server: its handler's signal aborts), ServerGoneError, FrameTooLargeError,
        ClosedError."""
        if self._closed:
            raise ClosedError("this client is closed")
        if not self._lock.acquire(blocking=False):
            raise BusyError("one request at a time on a Python client; connect another client for more")
        try:
            return self._request(data, self._timeout if timeout is None else timeout)
        finally:
            self._lock.release()

    def _request(self, data, timeout):
        if isinstance(data, str):
            data = data.encode("utf-8")
        rid = self._next_id
        self._next_id = 1 if rid == 0xFFFFFFFF else rid + 1
        frame = encode_request(LIMITED_REQUEST, rid, self._address, bytes(data), self._limit)
        if len(frame) > self._limit:
            raise FrameTooLargeError("a request of %d bytes is over the limit of %d bytes" % (len(frame), self._limit))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if len(frame) > SIZE_THRESHOLD:
                # A server whose limit this passes drops the request unread; the SIZE gets us its error.
                self._sender.send(encode_request(SIZE, rid, self._address, b"", len(frame)))
            self._sender.send(frame)
        except NoReaderError:
            raise ServerGoneError("the server on %s went away; start it again" % self.path) from None
        while True:
            wait = SERVER_CHECK if deadline is None else min(SERVER_CHECK, max(0.0, deadline - time.monotonic()))
            try:
                message = self._replies.receive(timeout=wait)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    self._cancel(rid)
                    raise TimeoutError("no reply from the server on %s (timeout %g s)" % (self.path, timeout)) from None
                if self._server_gone():
                    raise ServerGoneError("the server on %s went away; the request's outcome is unknown" % self.path) from None
                continue
            if message is None or len(message) < 9 or message[0] not in (REPLY, ERROR):
                continue
            kind, got_id, pid = struct.unpack_from("!BII", message)
            self._server_pid = pid
            if got_id != rid:
                continue  # a late reply to a request that timed out
            payload = message[9:]
            if kind == REPLY:
                return payload
            raise decode_error(payload)

    def _cancel(self, rid):
        try:
            self._sender.send(encode_request(CANCEL, rid, self._address), timeout=1)
        except NpipeError:
            pass

    def close(self):
        """Closes both ends and removes the reply FIFO. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sender.close()
        self._replies.close()
        try:
            os.unlink(self.reply_path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(path, timeout=None, max_message_size=DEFAULT_RPC_MAX_MESSAGE):
    """Connects to the server on `path`: creates this client's reply FIFO (0600, in
    its private reply folder) and opens the server's FIFO. `timeout` (seconds) is
    the default for each request. No server reading the FIFO is ServerGoneError
    (ERR_NPIPE_SERVER_GONE)."""
    d = ensure_reply_directory()
    remove_stale_reply_fifos(d)
    reply_path = os.path.join(d, "c-%d-%s.fifo" % (os.getpid(), os.urandom(8).hex()))
    mkfifo_exact(reply_path, 0o600)
    replies = None
    try:
        replies = open_receiver(reply_path, format="frames", create=False, max_message_size=max_message_size + 9)
        try:
            sender = open_sender(path, format="frames", timeout=0, create=False)
        except (TimeoutError, FifoNotFoundError):
            raise ServerGoneError("no server reads %s; start it (npipe serve %s ...)" % (path, path)) from None
    except BaseException:
        if replies is not None:
            replies.close()
        os.unlink(reply_path)
        raise
    return Client(path, sender, replies, reply_path, timeout, max_message_size)
