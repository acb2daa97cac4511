"""Senders and receivers over a FIFO, with the Node side's safety rules: opens
that never hang (O_NONBLOCK, retried until a timeout), O_NOFOLLOW, fstat checks
before a byte moves, a FIFO created with exactly the mode asked for."""

import errno
import fcntl
import os
import random
import select
import stat
import time

from . import formats
from .errors import (
    ClosedError,
    InvalidArgumentError,
    FifoNotFoundError,
    FifoPermissionError,
    NoReaderError,
    NotFifoError,
    SystemError,
    TimeoutError,
    UnsafeFifoError,
)

class _ReaderGone(Exception):
    """EPIPE inside a send: the reader went away."""


READ_SIZE = 65536
# How often a frames receiver looks for writers that died mid-message (as Node: 500 ms).
DEAD_WRITER_CHECK = 0.5
# A message in progress with no packet for this long (seconds of reading) is dropped as stalled (as Node: 30 s).
DEFAULT_PARTIAL_TIMEOUT = 30.0


def writer_alive(pid, fifo, own_writers=0):
    """Whether process `pid` lives and, on Linux, holds the FIFO `fifo` ((st_dev,
    st_ino)) open for writing. A pid can be reused by an unrelated process, and a
    first packet can claim any pid: a pid that holds the FIFO only for reading, or
    our own pid beyond our `own_writers` keep-open descriptors, is no writer. Where
    /proc cannot tell (another user's process), it counts as alive; the stalled
    timeout bounds what it can hold."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    if not os.path.isdir("/proc/self/fd"):
        return True
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    writers = 0
    for fd in fds:
        try:
            st = os.stat("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue  # closed meanwhile
        except OSError:
            return True  # listed but not examinable: neither proved nor refuted
        if (st.st_dev, st.st_ino) == fifo and _open_for_writing(pid, fd):
            writers += 1
    return writers > own_writers if pid == os.getpid() else writers > 0


def _open_for_writing(pid, fd):
    try:
        with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
            for line in f:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & 3 != 0
    except (OSError, ValueError, IndexError):
        pass
    return True


def _os_error(e, path, what):
    if e.errno in (errno.EACCES, errno.EPERM):
        return FifoPermissionError("%s %s: permission denied (%s)" % (what, path, e.strerror))
    if e.errno == errno.ENOENT:
        return FifoNotFoundError("%s does not exist; create it, or pass create=True" % path)
    if e.errno == errno.ELOOP:
        return NotFifoError("%s is a symbolic link, which npipe never follows" % path)
    return SystemError("%s %s: %s" % (what, path, e))


def mkfifo_exact(path, mode=0o600):
    """Creates the FIFO with exactly `mode` (past the umask), never opening it:
    a read end opened only to fchmod it is a reader for an instant, and a writer
    waiting for one could write into it and lose its bytes when it closes. So:
    lstat first (the umask left the mode as asked: nothing to do); else, on Linux,
    chmod through /proc/self/fd of an O_PATH|O_NOFOLLOW descriptor, which names
    the FIFO without opening it; elsewhere the old way, fchmod on a read end.
    Returns False if something already exists at `path`."""
    try:
        os.mkfifo(path, mode)
    except FileExistsError:
        return False
    st = os.lstat(path)
    if stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == mode:
        return True
    if hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd"):
        named = os.open(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            if stat.S_ISFIFO(os.fstat(named).st_mode):
                os.chmod("/proc/self/fd/%d" % named, mode)
        finally:
            os.close(named)
        return True
    own = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        if stat.S_ISFIFO(os.fstat(own).st_mode):
            os.fchmod(own, mode)
    finally:
        os.close(own)
    return True


def check_fifo(fd, path, allow_shared=False):
    """fstat checks on an open descriptor, before any byte moves."""
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode):
        raise NotFifoError("%s is not a FIFO; remove it or pick another path" % path)
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafeFifoError("%s belongs to user %d, not to you or root" % (path, st.st_uid))
    if st.st_mode & 0o022 and not allow_shared:
        raise UnsafeFifoError(
            "%s is writable by group or others (mode %o); chmod it, or pass allow_shared=True"
            % (path, stat.S_IMODE(st.st_mode))
        )


def _open_checked(path, flags, allow_shared):
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check_fifo(fd, path, allow_shared)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _prepare(path, create, mode):
    if create:
        mkfifo_exact(path, mode)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FifoNotFoundError("%s does not exist; create it, or pass create=True" % path) from None
    if not stat.S_ISFIFO(st.st_mode):
        raise NotFifoError("%s is not a FIFO; remove it or pick another path" % path)


class Sender:
    """Writes whole messages to a FIFO. Not for use from several threads at once."""

    def __init__(self, fd, path, fmt, max_message_size, wait_for_reader=False, allow_shared=False):
        self._fd = fd
        self.path = path
        self.format = fmt
        self._wait_for_reader = wait_for_reader
        self._allow_shared = allow_shared
        # Times the reader went away and this sender waited for the next one.
        self.reconnects = 0
        # A random non-zero writer id per sender (docs/PROTOCOL.md, writer rule 1).
        self.writer_id = random.SystemRandom().randint(1, 0xFFFFFFFF)
        self._encode = formats.encoder(fmt, self.writer_id, max_message_size, formats.PIPE_BUF)
        self._frames = fmt == "frames"

    def _write_all(self, data, deadline):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                self._wait_writable(deadline)
                continue
            except BrokenPipeError:
                raise _ReaderGone() from None
            view = view[n:]

    def _wait_writable(self, deadline):
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        left = None if deadline is None else max(0, deadline - time.monotonic())
        if left == 0:
            raise TimeoutError("the pipe %s took no byte in time (a reader that stopped reading?)" % self.path)
        events = poller.poll(None if left is None else left * 1000)
        if not events and deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("the pipe %s took no byte in time (a reader that stopped reading?)" % self.path)

    def send(self, message, timeout=None):
        """Sends one message (bytes-like; str is encoded as UTF-8).

        frames: every write() carries whole packets, at most PIPE_BUF bytes, so
        it is all-or-nothing and never mixes with another writer's bytes."""
        if self._fd is None:
            raise ClosedError("this sender is closed")
        if isinstance(message, str):
            message = message.encode("utf-8")
        deadline = None if timeout is None else time.monotonic() + timeout
        packets = self._encode(message)
        while True:
            try:
                return self._send_packets(packets, deadline)
            except _ReaderGone:
                if not self._wait_for_reader:
                    raise NoReaderError(
                        "the reader of %s went away (EPIPE); start a reader and open a new sender, "
                        "or pass wait_for_reader=True to wait for the next one" % self.path
                    ) from None
            # Writer rule 5 (docs/PROTOCOL.md): wait for the next reader and send the
            # message again from its first packet; the next reader drops the cut copy.
            self._reconnect(deadline)

    def _reconnect(self, deadline):
        # The new end is open before the old one closes, so the pipe keeps its unread bytes.
        fd = _open_writer(self.path, deadline, self._allow_shared)
        old, self._fd = self._fd, fd
        os.close(old)
        self.reconnects += 1

    def _send_packets(self, packets, deadline):
        if self._frames:
            batch = bytearray()
            for packet in packets:
                if len(batch) + len(packet) > formats.PIPE_BUF:
                    self._write_all(bytes(batch), deadline)
                    batch = bytearray()
                batch += packet
            if batch:
                self._write_all(bytes(batch), deadline)
        elif self.format == "raw":
            for data in packets:
                self._write_all(data, deadline)
        else:
            # lines, length, fixed:N have no writer ids: as npipe's Node writers do
            # (docs/FORMATS.md, "Several writers on one FIFO"), a message of at most
            # PIPE_BUF bytes goes out in one write() under a shared flock(2), a longer
            # one under an exclusive flock, so no other npipe writer writes meanwhile.
            data = packets[0]
            self._lock(fcntl.LOCK_SH if len(data) <= formats.PIPE_BUF else fcntl.LOCK_EX, deadline)
            try:
                self._write_all(data, deadline)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _lock(self, op, deadline):
        # Retried without blocking, so that a timeout holds here too.
        pause = 0.001
        while True:
            try:
                fcntl.flock(self._fd, op | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("another writer held the lock on %s too long" % self.path)
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def fileno(self):
        return self._fd

    def close(self):
        """Closes the descriptor. Idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_sender(path, format="frames", timeout=None, create=True, mode=0o600,
                max_message_size=formats.DEFAULT_MAX_MESSAGE_SIZE, allow_shared=False, wait_for_reader=False):
    """Opens `path` for writing, waiting for a reader up to `timeout` seconds
    (None: for ever; 0: one attempt). Never an open that blocks in the kernel:
    O_NONBLOCK, retried on ENXIO (no reader yet).

    wait_for_reader=True: when the reader goes away (EPIPE), send() waits for the
    next one (within its own timeout) and sends the message again from its first
    packet, as the Node sender's waitForReader does; else send() raises
    NoReaderError.

    Raises TimeoutError (ERR_NPIPE_TIMEOUT), NotFifoError, UnsafeFifoError,
    FifoNotFoundError (create=False), FifoPermissionError."""
    formats.parse_format(format)
    _prepare(path, create, mode)
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = _open_writer(path, deadline, allow_shared)
    return Sender(fd, path, format, max_message_size, wait_for_reader, allow_shared)


def _open_writer(path, deadline, allow_shared):
    """A checked write end of `path`, retried on ENXIO (no reader yet) until `deadline` (None: for ever)."""
    pause = 0.005
    while True:
        try:
            return _open_checked(path, os.O_WRONLY, allow_shared)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise _os_error(e, path, "opening") from None
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("no process opened %s for reading in time; start the reader, or pass a longer timeout" % path)
        left = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
        time.sleep(left)
        pause = min(pause * 2, 0.1)


class Receiver:
    """Reads whole messages from a FIFO: iterate for bytes, or receive()."""

    def __init__(self, fd, keep_fd, path, fmt, max_message_size, on_drop, partial_timeout=DEFAULT_PARTIAL_TIMEOUT):
        self._fd = fd
        self._keep_fd = keep_fd
        self.path = path
        self.format = fmt
        self._decoder = formats.decoder(fmt, max_message_size, on_drop)
        st = os.fstat(fd)
        self._fifo = (st.st_dev, st.st_ino)
        # Our keep-open descriptor is a writer of this FIFO in this process, and no writer's claim.
        self._own_writers = 1 if keep_fd is not None else 0
        self._partial_timeout = partial_timeout
        self._check_every = min(DEAD_WRITER_CHECK, max(0.01, partial_timeout / 4))
        self._queue = []
        self._eof = False
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._next_check = time.monotonic() + DEAD_WRITER_CHECK
        # A reader that reads all the time between its calls (npipe.serve polls the FIFO, then receive(timeout=0)):
        # its messages in progress age by wall time since the last look, not only by the time inside receive().
        self._always_reading = False
        self._aged_at = time.monotonic()

    @property
    def dropped(self):
        """Messages dropped rather than delivered torn (frames): {"messages", "bytes"}."""
        d = getattr(self._decoder, "dropped", None)
        return dict(d) if d is not None else {"messages": 0, "bytes": 0}

    @property
    def drop_reasons(self):
        return dict(getattr(self._decoder, "reasons", {}))

    def _check_dead_writers(self):
        # A message in progress whose writer is gone, or whose claimed pid holds no write end of this FIFO.
        # Each pid once: many writer ids may claim one pid (writer_alive reads all its descriptors).
        dec = self._decoder
        alive = {}
        for writer, pid in dec.in_progress().items():
            if pid == 0:
                continue
            if pid not in alive:
                alive[pid] = writer_alive(pid, self._fifo, self._own_writers)
            if not alive[pid]:
                dec.drop_writer(writer, "writer-died")

    def receive(self, timeout=None):
        """The next message, or None at end of file (keep_open=False, every writer
        gone). Raises TimeoutError (ERR_NPIPE_TIMEOUT) after `timeout` seconds."""
        if self._fd is None:
            raise ClosedError("this receiver is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        frames = isinstance(self._decoder, formats.FramesDecoder)
        # Only time spent here, reading, counts towards a stalled message: not the time the program takes between calls.
        tick = self._aged_at if self._always_reading else time.monotonic()
        while not self._queue:
            if self._eof:
                return None
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if frames and self._decoder.partials:
                # Wake up to look for dead writers and stalled messages.
                until_check = max(0.0, self._next_check - time.monotonic())
                wait = until_check if wait is None else min(wait, until_check)
            events = self._poller.poll(None if wait is None else wait * 1000)
            if events:
                try:
                    chunk = os.read(self._fd, READ_SIZE)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    self._eof = True
                    self._queue.extend(self._decoder.end())
                elif chunk:
                    self._queue.extend(self._decoder.feed(chunk))
            if frames:
                now = time.monotonic()
                self._decoder.age(now - tick, self._partial_timeout)
                tick = self._aged_at = now
                if now >= self._next_check:
                    self._next_check = now + self._check_every
                    if self._decoder.partials and not self._pipe_has_bytes():
                        self._check_dead_writers()
            if not self._queue and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no message on %s in time" % self.path)
        return self._queue.pop(0)

    def _pipe_has_bytes(self):
        # Dead-writer drops wait until the bytes in the pipe at that moment are read.
        return bool(self._poller.poll(0))

    def __iter__(self):
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def fileno(self):
        return self._fd

    def close(self):
        """Closes the read end and the keep-open write end. Idempotent."""
        for name in ("_keep_fd", "_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_receiver(path, format="frames", keep_open=True, max_message_size=formats.DEFAULT_MAX_MESSAGE_SIZE,
                  create=True, mode=0o600, allow_shared=False, on_drop=None, partial_timeout=DEFAULT_PARTIAL_TIMEOUT):
    """Opens `path` for reading (at once: a read end needs no writer).

    keep_open=True holds a write end of its own, so writers coming and going is
    not end of file (as the Node receiver does); keep_open=False ends at the
    first end of file after a writer has come and gone.

    frames: a message in progress whose writer died, or that got no packet for
    `partial_timeout` seconds of reading (time inside receive()), is dropped and
    counted (writer-died, stalled), as docs/PROTOCOL.md's reader rules say."""
    if not isinstance(partial_timeout, (int, float)) or partial_timeout <= 0:
        raise InvalidArgumentError("partial_timeout is a number of seconds above 0")
    formats.parse_format(format)
    _prepare(path, create, mode)
    try:
        fd = _open_checked(path, os.O_RDONLY, allow_shared)
    except OSError as e:
        raise _os_error(e, path, "opening") from None
    keep_fd = None
    if keep_open:
        try:
            keep_fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            if os.fstat(keep_fd).st_ino != os.fstat(fd).st_ino:
                raise NotFifoError("%s was replaced while it was being opened" % path)
        except BaseException:
            if keep_fd is not None:
                os.close(keep_fd)
            os.close(fd)
            raise
    return Receiver(fd, keep_fd, path, format, max_message_size, on_drop, partial_timeout)
