"""Request/reply, the server side (docs/RPC.md): ``serve(path, handler)`` answers
clients of any language (Node's connect(), ``npipe request``, npipe.connect) with
the same rules as the Node server:

- requests arrive on the server's FIFO in `frames`; each reply goes to the
  client's own reply FIFO, checked first (a FIFO named like a reply FIFO, in a
  0700 reply folder of the server's user, or of the folder's owner for a server
  running as root; O_NOFOLLOW; owner and mode checked again on the descriptor);
  any other address is refused and counted, and nothing is written there;
- nothing a client does stalls the server: reply FIFOs are written without
  blocking, from one loop, with bounded queues; a client that reads none of its
  replies for `stuck_after` seconds is dropped; waiting requests are bounded per
  client and in all (beyond: an ERR_NPIPE_BUSY reply); requests are taken
  round-robin across users, then clients;
- size limits never leave a client waiting (REQUEST+, SIZE: an
  ERR_NPIPE_FRAME_TOO_LARGE reply);
- a handler's exception crosses the wire with its `code` (an attribute that is a
  string, else ERR_NPIPE_REMOTE) and message; a cancel (the client's timeout)
  takes a waiting request out of the queue, or sets a running handler's
  `context.cancelled` (a threading.Event); its reply is then not sent;
- bytes that are not frames do not stop the server: it reports them, reads its
  FIFO afresh and serves on.

Handlers run on `concurrency` threads. A handler is ``handler(data) -> bytes``
(str is sent as UTF-8), or ``handler(data, context)`` to see ``context.cancelled``
and ``context.client`` (the reply address).
"""

import collections
import errno
import inspect
import os
import select
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import formats
from .errors import BadFrameError, InvalidArgumentError, NpipeError, TimeoutError
from .fifo import DEFAULT_PARTIAL_TIMEOUT, open_receiver
from .protocol import (
    CANCEL, DEFAULT_RPC_MAX_MESSAGE, ERROR, REPLY, SIZE,
    decode_client_message, encode_error, encode_reply,
)
from .replydir import check_reply_fifo_stat, check_reply_path, remove_stale_reply_fifos

# As the Node server (src/rpc/limits.ts).
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_WAITING_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_TOTAL_WAITING_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_QUEUED_REPLY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_TOTAL_QUEUED_REPLY_BYTES = 32 * 1024 * 1024
DEFAULT_STUCK_AFTER = 10.0
# What a waiting request or a queued reply costs beyond its bytes: an empty one is not free.
REQUEST_COST = 512
REPLY_COST = 512
# Error replies the server makes up itself are dropped once this much waits for the client.
ERROR_REPLY_QUEUE = 256 * 1024
# A client with nothing in progress for this long has its reply FIFO closed (a new request reopens it).
IDLE_CLIENT = 1.0
EVENTS_PER_SECOND = 20
# Messages read from the request FIFO per turn of the loop, between starting handlers and writing replies.
READ_BATCH = 256
# How long stop() lets running handlers finish (their `cancelled` set) before it returns.
STOP_GRACE = 2.0
_TICK = 0.25

_BUSY_CLIENT = b'{"code": "ERR_NPIPE_BUSY", "message": "too many requests from this client are waiting; retry later"}'
_BUSY_ALL = b'{"code": "ERR_NPIPE_BUSY", "message": "too many requests from all clients are waiting; retry later"}'


class RequestContext:
    """What a two-argument handler gets besides the request: ``cancelled`` (a
    threading.Event set when the client cancels, goes away, or the server stops)
    and ``client`` (the reply address: tells clients apart)."""

    __slots__ = ("cancelled", "client")

    def __init__(self, client):
        self.cancelled = threading.Event()
        self.client = client


class _Client:
    __slots__ = ("address", "owner", "fd", "writer_id", "jobs", "job_ids", "job_count", "job_bytes", "queued", "queued_bytes",
                 "handlers", "last_active", "last_progress", "gone", "encode")

    def __init__(self, address, owner, fd):
        now = time.monotonic()
        self.address = address
        self.owner = owner
        self.fd = fd
        self.writer_id = int.from_bytes(os.urandom(4), "big") or 1
        self.encode = formats.encoder("frames", self.writer_id, 0xFFFFFFFF)
        # Waiting requests, oldest first: [id, payload, max_reply, waiting]; one cancelled is marked (waiting False)
        # and skipped, found through job_ids (id -> its entries, oldest first), so a CANCEL never walks the queue.
        self.jobs = collections.deque()
        self.job_ids = {}
        self.job_count = 0
        self.job_bytes = 0
        self.queued = collections.deque()  # [bytes of at most PIPE_BUF (whole packets), cost freed once written]
        self.queued_bytes = 0
        self.handlers = {}  # id -> RequestContext
        self.last_active = now
        self.last_progress = now
        self.gone = False

    def clear_jobs(self):
        self.jobs.clear()
        self.job_ids.clear()
        self.job_count = 0
        self.job_bytes = 0


def _open_reply(address, owner):
    """A write end of the reply FIFO at `address`, without waiting for its reader,
    checked on the descriptor (a FIFO of `owner`, not writable by others).
    Raises OSError (ENXIO: no reader) or NpipeError."""
    fd = os.open(address, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        check_reply_fifo_stat(os.fstat(fd), address, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _takes_context(handler):
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _describe(e):
    """(code, message) of what a handler raised: its `code` if a non-empty string, its text (even if str() fails)."""
    try:
        code = getattr(e, "code", None)
    except BaseException:  # noqa: B902 - a property that raises
        code = None
    code = code if isinstance(code, str) and code else "ERR_NPIPE_REMOTE"
    try:
        text = str(e)
    except BaseException:  # noqa: B902 - a __str__ that raises
        text = ""
    if not isinstance(text, str) or not text:
        text = type(e).__name__
    return code, text


def print_event(kind, reason, client=None):
    """An on_event that prints one line on stderr, with the text a peer controls escaped (as `npipe serve`)."""
    where = "" if client is None else " (client %s)" % client.encode("unicode_escape").decode("ascii")
    sys.stderr.write("npipe serve: %s: %s%s\n" % (kind, reason.encode("unicode_escape").decode("ascii"), where))


class Server:
    """A request/reply server on the FIFO `path`. ``serve_forever()`` runs it in
    the calling thread until ``stop()`` (from any thread, a handler or a signal
    handler) or KeyboardInterrupt; ``stats`` counts what happened."""

    def __init__(self, path, handler, concurrency=DEFAULT_CONCURRENCY, max_message_size=DEFAULT_RPC_MAX_MESSAGE,
                 create=True, mode=0o600, on_event=None,
                 max_waiting_bytes=DEFAULT_MAX_WAITING_BYTES, max_total_waiting_bytes=DEFAULT_MAX_TOTAL_WAITING_BYTES,
                 max_queued_reply_bytes=DEFAULT_MAX_QUEUED_REPLY_BYTES,
                 max_total_queued_reply_bytes=DEFAULT_MAX_TOTAL_QUEUED_REPLY_BYTES,
                 stuck_after=DEFAULT_STUCK_AFTER, partial_timeout=DEFAULT_PARTIAL_TIMEOUT):
        if not callable(handler):
            raise InvalidArgumentError("handler must be callable: handler(data) -> bytes")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidArgumentError("concurrency is a whole number from 1")
        if not isinstance(max_message_size, int) or max_message_size < 64:
            raise InvalidArgumentError("max_message_size is a whole number of bytes, at least 64")
        self.path = path
        self._handler = handler
        self._with_context = _takes_context(handler)
        self._concurrency = concurrency
        self._limit = max_message_size
        self._max_waiting = max_waiting_bytes
        self._max_total_waiting = max_total_waiting_bytes
        self._max_queued = max_queued_reply_bytes
        self._max_total_queued = max_total_queued_reply_bytes
        self._stuck_after = stuck_after
        self._on_event = on_event
        self._mode = mode
        self._partial_timeout = partial_timeout
        self.stats = {"requests": 0, "replies": 0, "errors": 0, "cancelled": 0, "refused": 0, "replies_dropped": 0}
        self._clients = {}
        # Clients with requests waiting and room for replies, by owner; both levels round-robin (dicts keep order).
        self._ready = {}
        self._waiting_bytes = 0
        self._queued_total = 0
        self._running = 0
        self._done = collections.deque()  # (client, id, context, kind, payload) from the handler threads
        self._events = {}
        self._events_second = time.monotonic()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pid = os.getpid()
        self._receiver = self._open_requests(create)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="npipe-handler")

    # -- public ---------------------------------------------------------------

    def stop(self):
        """Stops taking requests; running handlers see `cancelled`. Safe from any thread and from signal handlers."""
        self._stopping.set()
        self._wake()

    @property
    def clients(self):
        """Clients the server knows now (with requests, replies or activity in the last second)."""
        return len(self._clients)

    @property
    def waiting(self):
        """Requests waiting for a handler."""
        return sum(c.job_count for c in self._clients.values())

    def serve_forever(self):
        """Serves until stop() or KeyboardInterrupt; then stops cleanly and returns."""
        try:
            self._loop()
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- the loop ---------------------------------------------------------------

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already woken (pipe full), or shut down

    def _loop(self):
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        request_fd = self._receiver.fileno()
        poller.register(request_fd, select.POLLIN)
        writing = set()
        next_sweep = time.monotonic() + IDLE_CLIENT
        while not self._stopping.is_set():
            for fd, _ in poller.poll(_TICK * 1000):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._read_requests()
            if self._receiver.fileno() != request_fd:  # read afresh after bytes that were not frames
                poller.unregister(request_fd)
                request_fd = self._receiver.fileno()
                poller.register(request_fd, select.POLLIN)
            self._finish_handlers()
            self._flush_all()
            writing = self._watch_writers(poller, writing)
            self._next()
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + IDLE_CLIENT
                self._sweep(now)

    def _read_requests(self):
        # At most READ_BATCH messages a turn: a writer that never lets the pipe go empty must not keep the loop
        # from starting handlers and writing replies (it read until the pipe was empty: a flood starved everyone).
        for _ in range(READ_BATCH):
            if self._stopping.is_set():
                return
            try:
                frame = self._receiver.receive(timeout=0)
            except TimeoutError:
                return
            except BadFrameError as e:
                # Anyone who may write to the FIFO can send bytes that are not frames: read afresh, serve on.
                self._event("bad-message", "%s; reading the request FIFO afresh" % e)
                self._receiver.close()
                self._receiver = self._open_requests(True)
                continue
            if frame is None:
                return
            self._dispatch(frame)

    def _open_requests(self, create):
        receiver = open_receiver(self.path, format="frames", max_message_size=self._limit, create=create,
                                 mode=self._mode, on_drop=self._frame_dropped, partial_timeout=self._partial_timeout)
        # The server reads its FIFO all the time (between its calls to receive() it polls it): a message in
        # progress stalls by wall time, not only by the moments spent inside receive(timeout=0).
        receiver._always_reading = True
        return receiver

    def _frame_dropped(self, reason, writer, nbytes):
        self._event("frame-dropped", "%s, %d bytes (writer %08x)" % (reason, nbytes, writer))

    def _dispatch(self, frame):
        try:
            message = decode_client_message(frame)
        except BadFrameError as e:
            self._event("bad-message", str(e))
            return
        if message.kind == CANCEL:
            client = self._clients.get(message.reply_to)
            if client is not None:  # a cancel never creates anything
                self._cancel(client, message.id)
            return
        client = self._client(message.reply_to)
        if client is None:
            return
        client.last_active = time.monotonic()
        if message.kind == SIZE:
            if message.size > self._limit:
                self._too_large(client, message.id, message.size, "request")
            return
        self.stats["requests"] += 1
        if len(frame) > self._limit:
            # It came whole in one packet (a larger one of several is dropped unread): answer it from here.
            self._too_large(client, message.id, len(frame), "request")
            return
        cost = len(message.payload) + REQUEST_COST
        if client.job_bytes + cost > self._max_waiting or self._waiting_bytes + cost > self._max_total_waiting:
            self.stats["errors"] += 1
            body = _BUSY_CLIENT if client.job_bytes + cost > self._max_waiting else _BUSY_ALL
            self._error_reply(client, encode_reply(ERROR, message.id, self._pid, body))
            return
        job = [message.id, message.payload, message.max_reply, True]
        client.jobs.append(job)
        client.job_ids.setdefault(message.id, collections.deque()).append(job)
        client.job_count += 1
        client.job_bytes += cost
        self._waiting_bytes += cost
        self._schedule(client)

    def _client(self, address):
        client = self._clients.get(address)
        if client is not None:
            return client
        try:
            owner = check_reply_path(address)
            check_reply_fifo_stat(os.lstat(address), address, owner)  # before the open: a FIFO, never a device
        except FileNotFoundError:
            self._client_gone(address)
            return None
        except (NpipeError, OSError, ValueError) as e:  # ValueError: a path the OS cannot take
            self._refused(address, e)
            return None
        try:
            fd = _open_reply(address, owner)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                self._client_gone(address)
            else:
                self._refused(address, e)
            return None
        except NpipeError as e:
            self._refused(address, e)
            return None
        client = _Client(address, owner, fd)
        self._clients[address] = client
        return client

    def _client_gone(self, address):
        # No reader, or no FIFO: a client that is gone (or never was); its leftover FIFO goes if its pid is gone.
        remove_stale_reply_fifos(os.path.dirname(address), os.path.basename(address))
        self.stats["replies_dropped"] += 1
        self._event("reply-dropped", "the client behind %s is gone" % address, address)

    def _refused(self, address, err):
        self.stats["refused"] += 1
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        self._event("refused", reason, address)

    def _cancel(self, client, rid):
        context = client.handlers.get(rid)
        if context is not None:
            self.stats["cancelled"] += 1
            context.cancelled.set()
            return
        entries = client.job_ids.get(rid)
        if entries:  # not started: taken out of the queue, its handler never runs
            job = entries.popleft()
            if not entries:
                del client.job_ids[rid]
            job[3] = False
            client.job_count -= 1
            cost = len(job[1]) + REQUEST_COST
            client.job_bytes -= cost
            self._waiting_bytes -= cost
            self.stats["cancelled"] += 1
            if client.job_count == 0:
                client.jobs.clear()
            elif len(client.jobs) > 2 * client.job_count + 64:  # mostly cancelled: compact, so they cost nothing
                client.jobs = collections.deque(j for j in client.jobs if j[3])
            self._schedule(client)

    def _too_large(self, client, rid, size, what):
        self.stats["errors"] += 1
        message = "a %s of %d bytes is over the server's limit of %d bytes" % (what, size, self._limit)
        self._error_reply(client, encode_error(rid, self._pid, "ERR_NPIPE_FRAME_TOO_LARGE", message,
                                               size=size, limit=self._limit, what=what))

    def _error_reply(self, client, reply):
        # Made up by the server: dropped rather than queued past ERROR_REPLY_QUEUE for the client, or past the
        # total bound unless the client has nothing queued (so a client that reads still hears ERR_NPIPE_BUSY).
        cost = len(reply) + REPLY_COST
        if (client.queued_bytes + cost > min(self._max_queued, ERROR_REPLY_QUEUE)
                or (client.queued_bytes > 0 and self._queued_total + cost > self._max_total_queued)):
            self.stats["replies_dropped"] += 1
            self._event("reply-dropped", "its replies are not being read; an error reply was dropped", client.address)
            return
        self._reply(client, reply)

    def _schedule(self, client):
        users = self._ready.get(client.owner)
        if not client.gone and client.job_count and client.queued_bytes < self._max_queued:
            if users is None:
                users = self._ready[client.owner] = {}
            users[client] = True
        elif users is not None:
            users.pop(client, None)
            if not users:
                del self._ready[client.owner]

    def _next(self):
        while (self._running < self._concurrency and self._ready and self._queued_total < self._max_total_queued
               and not self._stopping.is_set()):
            owner, users = next(iter(self._ready.items()))
            client = next(iter(users))
            # Both to the back of their round.
            del self._ready[owner]
            del users[client]
            if users:
                self._ready[owner] = users
            job = client.jobs.popleft()
            while not job[3]:  # cancelled while waiting
                job = client.jobs.popleft()
            rid, payload, max_reply = job[0], job[1], job[2]
            entries = client.job_ids[rid]
            entries.popleft()  # the oldest waiting one with this id is this one
            if not entries:
                del client.job_ids[rid]
            client.job_count -= 1
            cost = len(payload) + REQUEST_COST
            client.job_bytes -= cost
            self._waiting_bytes -= cost
            self._schedule(client)
            older = client.handlers.get(rid)
            if older is not None:
                # A client that reuses an id in flight: the newer request takes its place (as on the Node server).
                # Left running outside client.handlers, the older could not be cancelled nor told its client went,
                # and a handler that ends only on `cancelled` would keep its thread for ever.
                self.stats["cancelled"] += 1
                older.cancelled.set()
            context = RequestContext(client.address)
            client.handlers[rid] = context
            self._running += 1
            self._pool.submit(self._run, client, rid, payload, max_reply, context)

    def _run(self, client, rid, payload, max_reply, context):
        # On a handler thread: runs the handler and hands its outcome to the loop, whatever happens (else the
        # slot stays taken and the client waits for ever).
        outcome = (ERROR, ("ERR_NPIPE_REMOTE", "the handler failed"))
        try:
            result = self._handler(payload, context) if self._with_context else self._handler(payload)
            if isinstance(result, str):
                result = result.encode("utf-8")
            elif result is None:
                result = b""
            try:  # bytes-like only: bytes(5) would be five NUL bytes, bytes({1: 2}) b"\x01"
                outcome = (REPLY, bytes(memoryview(result)))
            except TypeError:
                raise TypeError("the handler returned %s, not bytes, str or None" % type(result).__name__) from None
        except BaseException as e:  # noqa: B902 - whatever the handler raises goes to its client
            outcome = (ERROR, _describe(e))
        finally:
            self._done.append((client, rid, max_reply, context, outcome))
            self._wake()

    def _finish_handlers(self):
        while self._done:
            client, rid, max_reply, context, (kind, value) = self._done.popleft()
            self._running -= 1
            if client.handlers.get(rid) is context:  # its own entry: a newer request may have taken the id
                del client.handlers[rid]
            if context.cancelled.is_set() and not self._stopping.is_set():
                continue  # cancelled by its client (counted then), or it went away: nobody waits for this
            if client.gone:
                self.stats["replies_dropped"] += 1
                continue
            limit = min(max_reply, self._limit) if max_reply > 0 else self._limit
            if kind == ERROR:
                self.stats["errors"] += 1
                code, text = value
                error = encode_error(rid, self._pid, code, text)
                while len(error) > limit and text:
                    # Over the client's limit its reader would drop it, and the client wait for ever: cut the text.
                    text = text[:len(text) // 2]
                    error = encode_error(rid, self._pid, code, text + " [cut]")
                self._reply(client, error)
                continue
            reply = encode_reply(REPLY, rid, self._pid, value)
            if len(reply) > limit:
                # Sent, the client's reader would drop it and the client wait for ever.
                self.stats["errors"] += 1
                message = "a reply of %d bytes is over the limit of %d bytes" % (len(reply), limit)
                self._reply(client, encode_error(rid, self._pid, "ERR_NPIPE_FRAME_TOO_LARGE", message,
                                                 size=len(reply), limit=limit, what="reply"))
                continue
            self.stats["replies"] += 1
            self._reply(client, reply)

    def _reply(self, client, reply):
        if client.gone:
            self.stats["replies_dropped"] += 1
            return
        if client.fd is None:  # closed while idle: open again (checked again on the descriptor)
            if not self._reopen(client):
                self.stats["replies_dropped"] += 1
                return
        if client.queued_bytes == 0:
            client.last_progress = time.monotonic()
        cost = len(reply) + REPLY_COST
        client.queued_bytes += cost
        self._queued_total += cost
        client.last_active = time.monotonic()
        batch = bytearray()
        for packet in client.encode(reply):
            if len(batch) + len(packet) > formats.PIPE_BUF:
                client.queued.append([bytes(batch), 0])
                batch = bytearray()
            batch += packet
        client.queued.append([bytes(batch), cost])
        self._schedule(client)
        self._flush(client)

    def _reopen(self, client):
        try:
            client.fd = _open_reply(client.address, client.owner)
        except OSError:
            self._drop_client(client, "its reply FIFO has no reader")
            return False
        except NpipeError as e:
            self._drop_client(client, str(e))
            return False
        return True

    def _flush(self, client):
        # Whole packets, at most PIPE_BUF a write: all or nothing, never mixed with another writer's.
        while client.queued and not client.gone:
            chunk, cost = client.queued[0]
            try:
                os.write(client.fd, chunk)
            except BlockingIOError:
                return
            except OSError as e:
                self._drop_client(client, "writing its reply: %s" % (e.strerror or e))
                return
            client.queued.popleft()
            if cost:
                client.queued_bytes -= cost
                self._queued_total -= cost
                client.last_progress = time.monotonic()
                self._schedule(client)

    def _flush_all(self):
        for client in list(self._clients.values()):
            if client.queued:
                self._flush(client)

    def _watch_writers(self, poller, watched):
        now = {c.fd for c in self._clients.values() if c.queued and c.fd is not None}
        for fd in watched - now:
            try:
                poller.unregister(fd)
            except KeyError:
                pass
        for fd in now - watched:
            poller.register(fd, select.POLLOUT)
        return now

    def _drop_client(self, client, reason):
        """The client is gone (or stuck): its waiting requests and queued replies are dropped, its handlers cancelled."""
        if client.gone:
            return
        client.gone = True
        self._event("reply-dropped", reason, client.address)
        users = self._ready.get(client.owner)
        if users is not None:
            users.pop(client, None)
            if not users:
                del self._ready[client.owner]
        if client.job_count:
            self.stats["replies_dropped"] += client.job_count
            self._waiting_bytes -= client.job_bytes
            client.clear_jobs()
        if client.queued:
            self.stats["replies_dropped"] += sum(1 for _, cost in client.queued if cost)
            client.queued.clear()
        self._queued_total -= client.queued_bytes
        client.queued_bytes = 0
        for context in client.handlers.values():
            if not context.cancelled.is_set():  # cancelled by its client: counted then
                self.stats["replies_dropped"] += 1  # its reply will never be sent
                context.cancelled.set()
        if self._clients.get(client.address) is client:
            del self._clients[client.address]
        if client.fd is not None:
            os.close(client.fd)
            client.fd = None

    def _sweep(self, now):
        self._flush_events(now)
        for client in list(self._clients.values()):
            if client.queued_bytes > 0 and now - client.last_progress > self._stuck_after:
                self._drop_client(client, "the client read none of its replies for %g s; dropped" % self._stuck_after)
            elif (client.fd is not None and not client.handlers and not client.job_count and not client.queued
                  and now - client.last_active > IDLE_CLIENT):
                # Idle: its descriptor is closed (a client that went away leaves no open fd); a new request reopens.
                os.close(client.fd)
                client.fd = None
                del self._clients[client.address]

    def _event(self, kind, reason, client=None):
        if self._on_event is None:
            return
        counts = self._events.setdefault(kind, [0, 0])
        if counts[0] >= EVENTS_PER_SECOND:
            counts[1] += 1
            return
        counts[0] += 1
        self._on_event(kind, reason, client)

    def _flush_events(self, now):
        if now - self._events_second < 1.0:
            return
        self._events_second = now
        for kind, (_, held) in self._events.items():
            if held and self._on_event is not None:
                self._on_event(kind, "%d more %s events in the last second, not shown one by one" % (held, kind), None)
        self._events.clear()

    def _shutdown(self):
        """Stops: no new handler starts, waiting requests are dropped, running ones see `cancelled` and get up
        to STOP_GRACE seconds, whose replies are still delivered; then every descriptor is closed."""
        self._stopping.set()
        for client in list(self._clients.values()):
            for context in client.handlers.values():
                context.cancelled.set()
            if client.job_count:
                self.stats["replies_dropped"] += client.job_count
                self._waiting_bytes -= client.job_bytes
                client.clear_jobs()
        self._ready.clear()
        self._receiver.close()
        deadline = time.monotonic() + STOP_GRACE
        while (self._running > 0 or any(c.queued for c in self._clients.values())) and time.monotonic() < deadline:
            try:
                select.select([self._wake_r], [], [], 0.02)
                os.read(self._wake_r, 4096)
            except (BlockingIOError, InterruptedError):
                pass
            except KeyboardInterrupt:
                break
            self._finish_handlers()
            self._flush_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in list(self._clients.values()):
            client.gone = True
            if client.fd is not None:
                os.close(client.fd)
                client.fd = None
        self._clients.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1


def serve(path, handler, concurrency=DEFAULT_CONCURRENCY, **options):
    """Serves requests on the FIFO `path` (created 0600 if missing) with
    ``handler(data) -> bytes`` until KeyboardInterrupt, or until ``stop()`` of the
    Server passed to ``on_start(server)`` if given (other options: see Server)."""
    on_start = options.pop("on_start", None)
    server = Server(path, handler, concurrency=concurrency, **options)
    if on_start is not None:
        on_start(server)
    server.serve_forever()
    return server
