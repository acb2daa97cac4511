"""npipe's wire formats: encoders and incremental decoders, byte for byte as
docs/FORMATS.md (lines, length, fixed:N, raw) and docs/PROTOCOL.md (frames).

An encoder turns one message into the bytes to write: ``encode(message) -> bytes``
(frames: a list of packets, each to go out in one ``write()``). A decoder takes
the byte stream in chunks as they come: ``feed(chunk) -> [messages]``, then
``end()`` at end of file (which may give one last message, or raise).
"""

import os
import struct

from .errors import BadFrameError, FrameTooLargeError, InvalidArgumentError

PIPE_BUF = 4096
try:  # select.PIPE_BUF is the platform's (4096 on Linux, 512 on macOS)
    import select as _select

    PIPE_BUF = _select.PIPE_BUF
except (ImportError, AttributeError):  # pragma: no cover
    pass

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
FORMATS = ("lines", "length", "fixed:N", "raw", "frames")

MAGIC = 0xFE
FIRST = 0x01
LAST = 0x02
_SHORT = struct.Struct("!BBHI")
_LONG = struct.Struct("!BBHIII")


def parse_format(name):
    """'lines' -> ('lines', None); 'fixed:22' -> ('fixed', 22). Else ERR_NPIPE_INVALID_ARG."""
    if name in ("lines", "length", "raw", "frames"):
        return name, None
    if isinstance(name, str) and name.startswith("fixed:"):
        digits = name[len("fixed:"):]
        if digits.isdigit() and digits.isascii() and int(digits) >= 1:
            return "fixed", int(digits)
    raise InvalidArgumentError(
        "unknown format %r: use lines, length, fixed:N (N >= 1), raw or frames" % (name,)
    )


def _check_size(message, max_message_size):
    if len(message) > max_message_size:
        raise FrameTooLargeError(
            "a message of %d bytes is over the limit of %d bytes (max_message_size)"
            % (len(message), max_message_size)
        )


def encode_lines(message):
    if b"\n" in message:
        raise BadFrameError("a lines message cannot contain a newline (0x0A); use length or frames")
    return bytes(message) + b"\n"


def encode_length(message):
    n = len(message)
    if n <= 0x7FFFFFFF:
        return struct.pack("!i", n) + bytes(message)
    return b"\xff\xff\xff\xff" + struct.pack("!Q", n) + bytes(message)


def encode_fixed(message, size):
    if len(message) != size:
        raise BadFrameError("fixed:%d takes messages of exactly %d bytes, not %d" % (size, size, len(message)))
    return bytes(message)


def encode_frames(message, writer_id, pid=None, packet_size=PIPE_BUF):
    """The packets of one message (docs/PROTOCOL.md, "Writer rules"), as a list of bytes."""
    if not 1 <= writer_id <= 0xFFFFFFFF:
        raise InvalidArgumentError("a writer id is from 1 to 2^32-1")
    if packet_size < 17:
        raise InvalidArgumentError("a packet size is at least 17 bytes")
    if len(message) > 0xFFFFFFFF:
        raise FrameTooLargeError("a frames message is at most 2^32-1 bytes")
    message = memoryview(message).cast("B") if not isinstance(message, bytes) else message
    if pid is None:
        pid = os.getpid()
    n = len(message)
    if n <= packet_size - 8:
        return [_SHORT.pack(MAGIC, FIRST | LAST, n, writer_id) + bytes(message)]
    first = packet_size - 16
    packets = [_LONG.pack(MAGIC, FIRST, first, writer_id, n, pid & 0xFFFFFFFF) + bytes(message[:first])]
    at = first
    while at < n:
        chunk = message[at:at + packet_size - 8]
        at += len(chunk)
        packets.append(_SHORT.pack(MAGIC, LAST if at == n else 0, len(chunk), writer_id) + bytes(chunk))
    return packets


class LinesDecoder:
    def __init__(self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE):
        self.max = max_message_size
        self.buf = bytearray()

    def feed(self, chunk):
        out = []
        start = len(self.buf)
        self.buf += chunk
        at = 0
        while True:
            nl = self.buf.find(b"\n", max(at, start))
            if nl < 0:
                break
            if nl - at > self.max:
                raise FrameTooLargeError("a line longer than the limit of %d bytes" % self.max)
            out.append(bytes(self.buf[at:nl]))
            at = nl + 1
            start = at
        del self.buf[:at]
        if len(self.buf) > self.max:
            raise FrameTooLargeError("a line growing past the limit of %d bytes" % self.max)
        return out

    def end(self):
        # Bytes after the last newline are one last message (the textbook writer's).
        if self.buf:
            last = bytes(self.buf)
            self.buf = bytearray()
            return [last]
        return []


class LengthDecoder:
    def __init__(self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE):
        self.max = max_message_size
        self.buf = bytearray()

    def feed(self, chunk):
        self.buf += chunk
        out = []
        at = 0
        buf = self.buf
        while True:
            if len(buf) - at < 4:
                break
            (n,) = struct.unpack_from("!i", buf, at)
            head = 4
            if n == -1:
                if len(buf) - at < 12:
                    break
                (n,) = struct.unpack_from("!Q", buf, at + 4)
                head = 12
            elif n < 0:
                raise BadFrameError("a length header of %d: not the length format" % n)
            # The size is checked before anything is allocated for it.
            if n > self.max:
                raise FrameTooLargeError("a message of %d bytes is over the limit of %d bytes" % (n, self.max))
            if len(buf) - at - head < n:
                break
            out.append(bytes(buf[at + head:at + head + n]))
            at += head + n
        del buf[:at]
        return out

    def end(self):
        if self.buf:
            raise BadFrameError("the stream ended inside a length message (%d bytes left over)" % len(self.buf))
        return []


class FixedDecoder:
    def __init__(self, size, max_message_size=DEFAULT_MAX_MESSAGE_SIZE):
        if size > max_message_size:
            raise FrameTooLargeError("fixed:%d is over the limit of %d bytes" % (size, max_message_size))
        self.size = size
        self.buf = bytearray()

    def feed(self, chunk):
        self.buf += chunk
        n = len(self.buf) // self.size * self.size
        out = [bytes(self.buf[i:i + self.size]) for i in range(0, n, self.size)]
        del self.buf[:n]
        return out

    def end(self):
        if self.buf:
            raise BadFrameError("the stream ended inside a fixed:%d message (%d bytes)" % (self.size, len(self.buf)))
        return []


class RawDecoder:
    def __init__(self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE):
        pass

    def feed(self, chunk):
        return [bytes(chunk)] if chunk else []

    def end(self):
        return []


# Writers whose current message is being skipped (dropped) are remembered, so that its later packets are not
# reported again; at most this many (the oldest is forgotten first), as the Node reader.
MAX_SKIPPING = 4096
# Messages in progress at once (one per writer id): past this a new one is dropped (memory), whatever its size:
# a first packet of a 0-byte message costs nothing against max_partial_bytes, but its record costs memory.
MAX_IN_PROGRESS = 65536


class _Partial:
    __slots__ = ("data", "filled", "pid", "last")

    def __init__(self, data, pid, now):
        self.data = data
        self.filled = 0
        self.pid = pid
        # The reading clock (see FramesDecoder.age) at this writer's last packet.
        self.last = now


class FramesDecoder:
    """The frames reader (docs/PROTOCOL.md, "Reader rules").

    Per writer id at most one message in progress. Drops are counted in
    ``dropped`` (``{"messages": n, "bytes": n}``) and ``reasons`` (by reason:
    abandoned, orphan, corrupt, too-large, memory, writer-died, stalled) and passed to
    ``on_drop(reason, writer_id, nbytes)`` if given. A bad magic byte or
    reserved flag bits raise BadFrameError (ERR_NPIPE_BAD_FRAME).
    """

    def __init__(self, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, max_partial_bytes=None, on_drop=None):
        self.max = min(max_message_size, 0xFFFFFFFF)
        self.max_partial = max_partial_bytes if max_partial_bytes is not None else max(4 * self.max, 256 * 1024 * 1024)
        self.on_drop = on_drop
        self.buf = bytearray()
        self.partials = {}  # writer id -> _Partial: the messages in progress
        self.skipping = {}  # writer id -> True: writers whose current message is skipped, oldest first
        self.partial_bytes = 0
        self.dropped = {"messages": 0, "bytes": 0}
        self.reasons = {}
        # Seconds of reading so far (see age), and when age() next looks at every message in progress.
        self.clock = 0.0
        self._next_sweep = 0.0

    def _drop(self, reason, writer, nbytes):
        self.dropped["messages"] += 1
        self.dropped["bytes"] += nbytes
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if self.on_drop is not None:
            self.on_drop(reason, writer, nbytes)

    def _skip(self, writer):
        self.skipping.pop(writer, None)
        if len(self.skipping) >= MAX_SKIPPING:
            del self.skipping[next(iter(self.skipping))]
        self.skipping[writer] = True

    def _forget(self, writer):
        self.skipping.pop(writer, None)
        p = self.partials.pop(writer, None)
        if p is not None:
            self.partial_bytes -= len(p.data)
        return p

    def drop_writer(self, writer, reason):
        """Drops a writer's message in progress (writer-died, stalled) if it has one; its later packets are skipped."""
        p = self._forget(writer)
        if p is not None:
            self._drop(reason, writer, p.filled)
            self._skip(writer)

    def age(self, elapsed, timeout):
        """`elapsed` seconds of reading went by: a message in progress with no
        packet for `timeout` seconds is dropped (stalled), whatever its pid says.
        Looks at every message in progress at most every timeout/4 (at most 0.5 s)
        of reading, not at every call."""
        self.clock += elapsed
        if self.clock < self._next_sweep or not self.partials:
            return
        self._next_sweep = self.clock + min(0.5, timeout / 4)
        for writer, p in list(self.partials.items()):
            if self.clock - p.last >= timeout:
                self.drop_writer(writer, "stalled")

    def in_progress(self):
        """{writer id: pid} of the messages in progress."""
        return {w: p.pid for w, p in self.partials.items()}

    def feed(self, chunk):
        self.buf += chunk
        buf = self.buf
        out = []
        at = 0
        size = len(buf)
        while size - at >= 8:
            magic, flags, n, writer = _SHORT.unpack_from(buf, at)
            if magic != MAGIC or flags & ~(FIRST | LAST):
                raise BadFrameError(
                    "a packet with magic 0x%02x and flags 0x%02x: something that does not speak "
                    "the frames protocol wrote into the FIFO" % (magic, flags)
                )
            head = 16 if flags == FIRST else 8
            if size - at < head + n:
                break
            payload_at = at + head
            if flags & FIRST:
                # A new message from this writer: one it had not finished is gone for good.
                old = self._forget(writer)
                if old is not None:
                    self._drop("abandoned", writer, old.filled)
            if flags == FIRST | LAST:
                out.append(bytes(buf[payload_at:payload_at + n]))
            elif flags == FIRST:
                total, pid = struct.unpack_from("!II", buf, at + 8)
                if total > self.max:
                    self._drop("too-large", writer, total)
                    self._skip(writer)
                elif self.partial_bytes + total > self.max_partial or len(self.partials) >= MAX_IN_PROGRESS:
                    self._drop("memory", writer, total)
                    self._skip(writer)
                elif n > total:
                    self._drop("corrupt", writer, n)
                    self._skip(writer)
                else:
                    # total was checked before this allocation.
                    p = _Partial(bytearray(total), pid, self.clock)
                    p.data[0:n] = buf[payload_at:payload_at + n]
                    p.filled = n
                    self.partials[writer] = p
                    self.partial_bytes += total
            else:
                p = self.partials.get(writer)
                last = flags == LAST
                if p is None:
                    if writer in self.skipping:
                        if last:
                            del self.skipping[writer]
                    else:
                        # The start went to someone else: skip up to this writer's last or next first.
                        self._drop("orphan", writer, n)
                        if not last:
                            self._skip(writer)
                else:
                    total = len(p.data)
                    if p.filled + n > total or (last and p.filled + n != total):
                        self._forget(writer)
                        self._drop("corrupt", writer, p.filled + n)
                        if not last:
                            self._skip(writer)
                    else:
                        p.data[p.filled:p.filled + n] = buf[payload_at:payload_at + n]
                        p.filled += n
                        p.last = self.clock
                        if last:
                            self._forget(writer)
                            out.append(bytes(p.data))
            at += head + n
        del buf[:at]
        return out

    def end(self):
        """End of file: every message in progress is dropped (its writer is gone)."""
        for writer in list(self.partials):
            self.drop_writer(writer, "writer-died")
        self.partials.clear()
        self.skipping.clear()
        self.partial_bytes = 0
        if self.buf:
            n = len(self.buf)
            self.buf = bytearray()
            self._drop("corrupt", 0, n)
        return []


def encoder(fmt, writer_id=None, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, packet_size=PIPE_BUF):
    """``encode(message) -> list of bytes``, each item to go out in one write (frames) or in order."""
    kind, size = parse_format(fmt)
    if kind == "frames":
        pid = os.getpid()

        def encode(message):
            _check_size(message, max_message_size)
            return encode_frames(message, writer_id, pid, packet_size)
    elif kind == "lines":
        def encode(message):
            _check_size(message, max_message_size)
            return [encode_lines(message)]
    elif kind == "length":
        def encode(message):
            _check_size(message, max_message_size)
            return [encode_length(message)]
    elif kind == "fixed":
        def encode(message):
            return [encode_fixed(message, size)]
    else:
        def encode(message):
            return [bytes(message)] if message else []
    return encode


def decoder(fmt, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, on_drop=None, max_partial_bytes=None):
    kind, size = parse_format(fmt)
    if kind == "frames":
        return FramesDecoder(max_message_size, max_partial_bytes, on_drop)
    if kind == "lines":
        return LinesDecoder(max_message_size)
    if kind == "length":
        return LengthDecoder(max_message_size)
    if kind == "fixed":
        return FixedDecoder(size, max_message_size)
    return RawDecoder(max_message_size)
