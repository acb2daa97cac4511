"""The private folders of request/reply clients' reply FIFOs (docs/RPC.md,
"Endpoints"), as the Node side (src/fifo/replydir.ts) makes and checks them: a
client makes its folder and FIFO here; a server checks a reply address against
the same rules before it writes a byte there."""

import os
import re
import stat

from .errors import InvalidArgumentError, NotFifoError, SystemError, UnsafeFifoError

REPLY_NAME = re.compile(r"^c-(\d+)-[0-9a-f]{16}\.fifo$")


def tmpdir():
    # As Node's os.tmpdir(), so that a Node server accepts the folder a Python client picks, and back.
    d = os.environ.get("TMPDIR") or os.environ.get("TMP") or os.environ.get("TEMP") or "/tmp"
    return d.rstrip("/") if len(d) > 1 else d


def reply_directories(uid=None):
    """The reply folders of user `uid`, in order of preference."""
    uid = os.geteuid() if uid is None else uid
    dirs = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if uid == os.geteuid() and xdg and os.path.isabs(xdg):
        dirs.append(os.path.join(xdg, "npipe"))
    for d in (os.path.join("/run/user", str(uid), "npipe"), os.path.join(tmpdir(), "npipe-%d" % uid)):
        if d not in dirs:
            dirs.append(d)
    return dirs


def _is_fallback_directory(d, uid):
    return os.path.dirname(d) == tmpdir() and re.match(r"^npipe-%d-[A-Za-z0-9]{6}$" % uid, os.path.basename(d)) is not None


def is_reply_directory(d, uid):
    """Whether `d` is one of the reply folders `uid` may have (the list above, or a private fallback)."""
    return d in reply_directories(uid) or _is_fallback_directory(d, uid)


def _not_ours(st, uid):
    return stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != uid


def _check_directory(d, st, uid):
    if _not_ours(st, uid):
        raise UnsafeFifoError("%s is not a directory of uid %d (or is a symlink); remove it so npipe can create its reply folder" % (d, uid))
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
    tmp = tmpdir()
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


def process_gone(pid):
    """Whether no process `pid` exists; one of another user's counts as there."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    except OverflowError:
        return True
    return False


def remove_stale_reply_fifos(d, only=None):
    """Removes leftover reply FIFOs of clients whose pid is gone (SIGKILLed): all in `d`, or only `only`."""
    try:
        names = os.listdir(d) if only is None else [only]
    except OSError:
        return
    for name in names:
        m = REPLY_NAME.match(name)
        if m and int(m.group(1)) != os.getpid() and process_gone(int(m.group(1))):
            try:
                os.unlink(os.path.join(d, name))
            except OSError:
                pass


def check_reply_path(path):
    """A reply address a client named, before a server writes there: an absolute,
    normalized path to a FIFO named like a reply FIFO, in a reply folder (0700, not
    a symlink) of the server's own user, or, for a server running as root, of the
    folder's owner. Returns that uid (the FIFO's owner is checked again on the
    open descriptor). Raises InvalidArgumentError or UnsafeFifoError."""
    # A NUL byte is no path (os.lstat raises ValueError, not OSError, on one).
    if (not isinstance(path, str) or "\0" in path or not os.path.isabs(path) or os.path.normpath(path) != path
            or path.startswith("//")):
        raise InvalidArgumentError("reply address %r is not a normalized absolute path" % (path,))
    if not REPLY_NAME.match(os.path.basename(path)):
        raise UnsafeFifoError("reply address %s is not named like an npipe reply FIFO; refused" % path)
    d = os.path.dirname(path)
    try:
        st = os.lstat(d)
    except OSError as e:
        raise UnsafeFifoError("checking the reply folder %s: %s" % (d, e.strerror)) from None
    server = os.geteuid()
    uid = st.st_uid if server == 0 else server
    if not is_reply_directory(d, uid):
        raise UnsafeFifoError("reply address %s is outside the reply folders of uid %d; refused" % (path, uid))
    _check_directory(d, st, uid)
    return uid


def check_reply_fifo_stat(st, path, uid):
    """The reply FIFO itself (lstat, then fstat of the open descriptor): a FIFO, owned by `uid`, not writable by others."""
    if not stat.S_ISFIFO(st.st_mode):
        raise NotFifoError("reply address %s is not a FIFO; refused" % path)
    if st.st_uid != uid:
        raise UnsafeFifoError("reply FIFO %s is owned by uid %d, not by uid %d as expected; refused" % (path, st.st_uid, uid))
    if st.st_mode & 0o022:
        raise UnsafeFifoError("reply FIFO %s can be written by others (mode %o); refused" % (path, stat.S_IMODE(st.st_mode)))
