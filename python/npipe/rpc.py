"""Request/reply, the client side (docs/RPC.md): ``connect(path)`` to a server
started by the Node side (``serve`` or ``npipe serve``).

The client is synchronous: one ``request()`` at a time (a second one from another
thread while one waits raises BusyError). There is no ``serve`` in Python yet.
"""

import errno
import json
import os
import re
import stat
import struct
import threading
import time

from . import formats
from .errors import (
    BusyError,
    ClosedError,
    FifoNotFoundError,
    FrameTooLargeError,
    NoReaderError,
    NpipeError,
    RemoteError,
    ServerGoneError,
    SystemError,
    TimeoutError,
    UnsafeFifoError,
)
from .fifo import mkfifo_exact, open_receiver, open_sender

REQUEST, CANCEL, REPLY, ERROR, LIMITED_REQUEST, SIZE = 1, 2, 3, 4, 5, 6
SIZE_THRESHOLD = formats.PIPE_BUF - 8
DEFAULT_RPC_MAX_MESSAGE = 1024 * 1024
# How often a waiting client checks that its server is still there (as Node: 250 ms).
SERVER_CHECK = 0.25
_REPLY_NAME = re.compile(r"^c-(\d+)-[0-9a-f]{16}\.fifo$")


def _tmpdir():
    # As Node's os.tmpdir(), so that a Node server accepts the folder a Python client picks.
    d = os.environ.get("TMPDIR") or os.environ.get("TMP") or os.environ.get("TEMP") or "/tmp"
    return d.rstrip("/") if len(d) > 1 else d


def reply_directories(uid=None):
    """The reply folders, in order of preference (docs/RPC.md, "Endpoints")."""
    uid = os.geteuid() if uid is None else uid
    dirs = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if uid == os.geteuid() and xdg and os.path.isabs(xdg):
        dirs.append(os.path.join(xdg, "npipe"))
    for d in (os.path.join("/run/user", str(uid), "npipe"), os.path.join(_tmpdir(), "npipe-%d" % uid)):
        if d not in dirs:
            dirs.append(d)
    return dirs


def _not_ours(st, uid):
    return stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != uid


def _check_directory(d, st, uid):
    if _not_ours(st, uid):
        raise UnsafeFifoError("%s is not a directory of yours (or is a symlink); remove it so npipe can create its reply folder" % d)
    if st.st_mode & 0o077:
        raise UnsafeFifoError("%s can be used by other users (mode %o); run chmod 700 %s" % (d, stat.S_IMODE(st.st_mode), d))


def ensure_reply_directory():
    """The caller's reply folder, created 0700 if missing and checked; a private
    <tmpdir>/npipe-<uid>-XXXXXX when every usual place is taken by someone else."""
    uid = os.geteuid()
    taken = False
    last = None
    for d in reply_directories(uid):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            last = e
            continue
        st = os.lstat(d)
        if _not_ours(st, uid):
            taken = True
            continue
        _check_directory(d, st, uid)
        return d
    if not taken:
        raise SystemError("creating the reply folder in %s: %s" % (" or ".join(reply_directories(uid)), last))
    pattern = re.compile(r"^npipe-%d-[A-Za-z0-9]{6}$" % uid)
    tmp = _tmpdir()
    for name in sorted(os.listdir(tmp)):
        d = os.path.join(tmp, name)
        if pattern.match(name):
            try:
                st = os.lstat(d)
            except FileNotFoundError:
                continue
            if not _not_ours(st, uid) and not st.st_mode & 0o077:
                return d
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    while True:
        # As mkdtemp in Node names it (6 characters), which is what a Node server accepts.
        suffix = "".join(alphabet[b % len(alphabet)] for b in os.urandom(6))
        d = os.path.join(tmp, "npipe-%d-%s" % (uid, suffix))
        try:
            os.mkdir(d, 0o700)
            break
        except FileExistsError:
            continue
    _check_directory(d, os.lstat(d), uid)
    return d


def _process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_reply_fifos(d):
    """Removes leftover reply FIFOs of clients whose pid is gone (SIGKILLed)."""
    for name in os.listdir(d):
        m = _REPLY_NAME.match(name)
        if m and int(m.group(1)) != os.getpid() and _process_gone(int(m.group(1))):
            try:
                os.unlink(os.path.join(d, name))
            except OSError:
                pass


def _encode_request(kind, rid, address, payload=b"", extra=None):
    head = struct.pack("!BIH", kind, rid, len(address)) + address
    if extra is not None:
        head += struct.pack("!I", min(extra, 0xFFFFFFFF))
    return head + payload


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
        if self._server_pid and _process_gone(self._server_pid):
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
        frame = _encode_request(LIMITED_REQUEST, rid, self._address, bytes(data), self._limit)
        if len(frame) > self._limit:
            raise FrameTooLargeError("a request of %d bytes is over the limit of %d bytes" % (len(frame), self._limit))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if len(frame) > SIZE_THRESHOLD:
                # A server whose limit this passes drops the request unread; the SIZE gets us its error.
                self._sender.send(_encode_request(SIZE, rid, self._address, b"", len(frame)))
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
            raise _decode_error(payload)

    def _cancel(self, rid):
        try:
            self._sender.send(_encode_request(CANCEL, rid, self._address), timeout=1)
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


def _decode_error(payload):
    try:
        parsed = json.loads(payload.decode("utf-8"))
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else "ERR_NPIPE_REMOTE"
        message = parsed.get("message") if isinstance(parsed.get("message"), str) else "the server reported an error"
    except (ValueError, AttributeError):
        parsed, code, message = {}, "ERR_NPIPE_REMOTE", payload.decode("utf-8", "replace")
    if code == "ERR_NPIPE_FRAME_TOO_LARGE" and isinstance(parsed.get("size"), int) and isinstance(parsed.get("limit"), int):
        e = FrameTooLargeError(message)
        e.size, e.limit, e.what = parsed["size"], parsed["limit"], parsed.get("what")
        return e
    return RemoteError(message, remote_code=code)


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
