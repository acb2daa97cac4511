"""The request/reply messages (docs/RPC.md, "Messages"): each one `frames`
message, integers big-endian. Shared by the client and the server."""

import json
import struct

from .errors import BadFrameError, FrameTooLargeError, RemoteError
from .formats import PIPE_BUF

REQUEST, CANCEL, REPLY, ERROR, LIMITED_REQUEST, SIZE = 1, 2, 3, 4, 5, 6
# A request longer than this travels as several packets: a client announces it with a SIZE first.
SIZE_THRESHOLD = PIPE_BUF - 8
DEFAULT_RPC_MAX_MESSAGE = 1024 * 1024
_CLIENT_KINDS = (REQUEST, CANCEL, LIMITED_REQUEST, SIZE)


def encode_request(kind, rid, address, payload=b"", extra=None):
    """REQUEST, CANCEL, REQUEST+ (extra: the largest reply taken) or SIZE (extra: the request's bytes)."""
    head = struct.pack("!BIH", kind, rid, len(address)) + address
    if extra is not None:
        head += struct.pack("!I", min(extra, 0xFFFFFFFF))
    return head + payload


def encode_reply(kind, rid, server_pid, payload):
    """REPLY or ERROR."""
    return struct.pack("!BII", kind, rid, server_pid & 0xFFFFFFFF) + payload


def encode_error(rid, server_pid, code, message, **detail):
    body = dict(detail)
    body["code"] = code
    body["message"] = message
    return encode_reply(ERROR, rid, server_pid, json.dumps(body).encode("utf-8"))


class ClientMessage:
    """A decoded REQUEST, CANCEL, REQUEST+ or SIZE."""

    __slots__ = ("kind", "id", "reply_to", "payload", "max_reply", "size")

    def __init__(self, kind, rid, reply_to, payload, max_reply, size):
        self.kind = kind
        self.id = rid
        self.reply_to = reply_to
        self.payload = payload
        self.max_reply = max_reply
        self.size = size


def decode_client_message(frame):
    """A message on a server's FIFO. Raises BadFrameError for anything else."""
    if len(frame) < 7:
        raise BadFrameError("request/reply message of %d bytes is too short" % len(frame))
    kind, rid, n = struct.unpack_from("!BIH", frame)
    if kind not in _CLIENT_KINDS:
        raise BadFrameError("unexpected message type %d on the request FIFO" % kind)
    head = 7 + n + (4 if kind in (LIMITED_REQUEST, SIZE) else 0)
    if len(frame) < head:
        raise BadFrameError("request message shorter than its header")
    extra = struct.unpack_from("!I", frame, 7 + n)[0] if head > 7 + n else 0
    reply_to = bytes(frame[7:7 + n]).decode("utf-8", "replace")
    return ClientMessage(
        kind, rid, reply_to, bytes(frame[head:]),
        extra if kind == LIMITED_REQUEST else 0,
        extra if kind == SIZE else 0,
    )


def decode_error(payload):
    """An ERROR's payload as the exception a client raises."""
    try:
        parsed = json.loads(payload.decode("utf-8"))
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else "ERR_NPIPE_REMOTE"
        message = parsed.get("message") if isinstance(parsed.get("message"), str) else "the server reported an error"
    except (ValueError, UnicodeDecodeError):
        parsed, code, message = {}, "ERR_NPIPE_REMOTE", payload.decode("utf-8", "replace")
    if code == "ERR_NPIPE_FRAME_TOO_LARGE" and isinstance(parsed.get("size"), int) and isinstance(parsed.get("limit"), int):
        e = FrameTooLargeError(message)
        e.size, e.limit, e.what = parsed["size"], parsed["limit"], parsed.get("what")
        return e
    return RemoteError(message, remote_code=code)
