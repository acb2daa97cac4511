/**
 * Opening FIFOs without ever blocking: every open uses O_NONBLOCK, so it runs on
 * the event loop's thread and returns at once. Nothing here parks a libuv
 * threadpool thread on a FIFO (nodejs/node#23220: four blocked opens hang every
 * fs call; #3628: the process cannot exit), and a pending open leaves no fd, timer
 * or listener behind when it is aborted (as containerd/fifo's cancellable open).
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket, SocketConstructorOpts } from 'node:net';
import { InvalidArgumentError, NotFifoError, UnsafeFifoError } from '../errors.js';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { deadline, sleep, type WaitOptions } from '../util/abort.js';
import { bytesInPipe, getPipeSize, setPipeSize } from './capacity.js';
import { dup } from './lock.js';
import { checkMode, describeKind, mkfifoExactSync } from './mkfifo.js';

const { O_RDONLY, O_WRONLY, O_NONBLOCK, O_NOFOLLOW } = constants;

/**
 * node:net, loaded when the first end needs a socket: a one-shot send whose writes
 * all go through at once never does, and loading it (with node:stream) cost ~5 ms
 * of such a call's start-up here (issue 18 #6).
 */
let net: typeof import('node:net') | undefined;
const loadNet = () => (net ??= createRequire(import.meta.url)('node:net') as typeof import('node:net'));

/** A writer waiting for a reader retries its open at most this far apart. */
export const MAX_READER_POLL_MS = 50;

export interface OpenFifoOptions extends WaitOptions {
  /** Create the FIFO when it is missing (default true), like the textbook writer does. */
  create?: boolean;
  /** Mode for a FIFO this call creates (default 0o600). */
  mode?: number;
  /**
   * Accept a FIFO that group or others may write to (default false). Anyone who can
   * write to the FIFO can inject messages, so npipe refuses such a FIFO unless told.
   * A Windows pipe receiver: let every local user connect (default: only this user);
   * a sender: also send to a receiver another user shared.
   */
  allowShared?: boolean;
  /**
   * The uid the FIFO must belong to. Default: the caller, or root. (A server
   * running as root writing into a user's reply FIFO names that user.)
   */
  owner?: number;
}

export interface OpenReaderOptions extends OpenFifoOptions {
  /**
   * Keep the reader open while writers come and go (default true): the reader holds
   * a write descriptor of its own, so the last writer closing is not an end of file.
   * With false, the first end of file (every writer gone) ends the reader, as the
   * textbook reader does.
   */
  keepOpen?: boolean;
}

export type FifoRole = 'read' | 'write';

/**
 * One open end of a FIFO, checked to be a FIFO the caller may trust.
 * `close()` is idempotent and closes the descriptor (or the socket that took it over).
 */
export class FifoEnd {
  readonly path: string;
  readonly role: FifoRole;
  readonly fd: number;
  /** Device and inode of the FIFO that was opened (what was checked). */
  readonly dev: number;
  readonly ino: number;
  #keepalive: number | undefined;
  #socket: Socket | undefined;
  #closed = false;

  constructor(path: string, role: FifoRole, fd: number, st: Stats, keepalive?: number) {
    this.path = path;
    this.role = role;
    this.fd = fd;
    this.dev = st.dev;
    this.ino = st.ino;
    this.#keepalive = keepalive;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The end as a Node stream. libuv reads and writes the non-blocking fd when epoll
   * says it is ready, on the event loop, never on the threadpool. One socket per
   * end; `close()` destroys it. `onread` (read ends): Node reads into that one
   * buffer and calls back, instead of allocating a buffer per read.
   */
  socket(options: { onread?: { buffer: Uint8Array | (() => Uint8Array); callback(bytes: number, buffer: Uint8Array): boolean } } = {}): Socket {
    if (this.#socket) return this.#socket;
    // A write end's socket gets a dup: Node closes a socket's fd when a write fails
    // (EPIPE), and this end must stay open so the pipe keeps its unread bytes for
    // the next reader.
    this.#socket =
      this.role === 'read'
        ? new (loadNet().Socket)({ fd: this.fd, readable: true, writable: false, allowHalfOpen: true, ...options } as SocketConstructorOpts)
        : new (loadNet().Socket)({ fd: dup(this.fd), readable: false, writable: true });
    return this.#socket;
  }

  /** Bytes written into the pipe and not yet read (FIONREAD). */
  bytesInPipe(): number {
    return bytesInPipe(this.fd);
  }

  /** Capacity of the pipe in bytes (Linux). */
  getPipeSize(): number {
    return getPipeSize(this.fd);
  }

  /** Sets the pipe's capacity (Linux); returns the size the kernel chose. */
  setPipeSize(size: number): number {
    return setPipeSize(this.fd, size);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket?.destroy();
    if (!this.#socket || this.role === 'write') closeQuietly(this.fd);
    if (this.#keepalive !== undefined) closeQuietly(this.#keepalive);
    this.#keepalive = undefined;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // EBADF cannot happen for an fd we own; nothing useful to report on close.
  }
}

/**
 * Checks what was opened (tokio's is_pipe, containerd's inode check): a FIFO, owned
 * by the caller or root, and not writable by others unless allowed. Closes `fd`
 * and throws otherwise, before a single byte is read or written.
 */
function checkOpened(fd: number, path: string, allowShared: boolean, owner?: number, created = false): Stats {
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (err) {
    closeQuietly(fd);
    throw fromSystemError(err, path, 'checking');
  }
  try {
    checkStats(st, path, allowShared, owner);
  } catch (err) {
    if (created) removeCreated(path, fd);
    closeQuietly(fd);
    throw err;
  }
  return st;
}

export function checkStats(st: Stats, path: string, allowShared: boolean, owner?: number): void {
  if (!st.isFIFO()) {
    throw new NotFifoError(`${path} is ${describeKind(st)}, not a FIFO; remove it or choose another path`);
  }
  if (owner !== undefined) {
    if (st.uid !== owner) {
      throw new UnsafeFifoError(`${path} is owned by uid ${st.uid}, not by uid ${owner} as expected; it will not be used`);
    }
  } else if (process.geteuid !== undefined && st.uid !== process.geteuid() && st.uid !== 0) {
    const euid = process.geteuid();
    throw new UnsafeFifoError(
      `${path} is owned by uid ${st.uid}, not by you (uid ${euid}) or root, so its owner can read or inject ` +
        `messages; use a FIFO you created, or have its owner remove it (rm ${path})`,
    );
  }
  if (!allowShared && (st.mode & 0o022) !== 0) {
    throw new UnsafeFifoError(
      `${path} can be written by ${writers(st.mode)} (mode ${(st.mode & 0o777)
        .toString(8)
        .padStart(3, '0')}); run chmod go-w ${path}, or pass allowShared (--allow-shared) if that is intended`,
    );
  }
}

function writers(mode: number): string {
  if ((mode & 0o022) === 0o022) return 'its group and others';
  return mode & 0o020 ? 'its group' : 'others';
}

function checkPath(path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('path must be a non-empty string');
}

/**
 * A mode that lets group or others write is asked for together with allowShared,
 * before anything is created: npipe never creates a FIFO it would then refuse
 * (issue 15 #19).
 */
function checkCreateMode(options: OpenFifoOptions): void {
  if (options.mode === undefined) return;
  checkMode(options.mode);
  if ((options.mode & 0o022) !== 0 && options.allowShared !== true) {
    throw new InvalidArgumentError(
      `mode ${options.mode.toString(8).padStart(3, '0')} lets ${writers(options.mode)} write to the FIFO, ` +
        'which npipe refuses unless told: pass allowShared (--allow-shared) too, or use a mode such as 600',
    );
  }
}

/**
 * open(2) with O_NONBLOCK|O_NOFOLLOW; creates the FIFO first if it is missing and
 * allowed, with exactly the mode asked for (set with fchmod, as mkfifo -m does: the
 * umask neither widens nor narrows it). `created`: this call made the FIFO.
 */
function openNow(path: string, flags: number, options: OpenFifoOptions): { fd: number; created: boolean } {
  try {
    return { fd: openSync(path, flags | O_NONBLOCK | O_NOFOLLOW), created: false };
  } catch (err) {
    if (isErrno(err, 'ENOENT') && options.create !== false) {
      const created = mkfifoExactSync(path, options.mode ?? 0o600);
      return { fd: openSync(path, flags | O_NONBLOCK | O_NOFOLLOW), created };
    }
    throw err;
  }
}

/** Removes a FIFO this process created and then refused to use (it is still ours: same inode). */
function removeCreated(path: string, fd: number): void {
  try {
    const st = fstatSync(fd);
    const now = lstatSync(path, { throwIfNoEntry: false });
    if (now && now.ino === st.ino && now.dev === st.dev) unlinkSync(path);
  } catch {
    // Best effort: the refusal is what gets reported.
  }
}

/**
 * Opens `path` for reading. Never waits: a FIFO reader opened with O_NONBLOCK does
 * not need a writer to be there, and the socket waits for data on the event loop.
 *
 * @throws ERR_NPIPE_NOT_FIFO (also for a symlink), ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND
 *   (missing and `create: false`), ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 * @example
 * const end = await openFifoReader('/tmp/jobs');
 * end.socket().on('data', (chunk) => console.log(chunk));
 */
export async function openFifoReader(path: string, options: OpenReaderOptions = {}): Promise<FifoEnd> {
  checkPath(path);
  if (options.signal?.aborted) throw options.signal.reason;
  const allowShared = options.allowShared === true;
  checkCreateMode(options);
  let fd: number;
  let created: boolean;
  try {
    ({ fd, created } = openNow(path, O_RDONLY, options));
  } catch (err) {
    throw fromSystemError(err, path, 'opening for reading');
  }
  const st = checkOpened(fd, path, allowShared, options.owner, created);
  if (options.keepOpen === false) return new FifoEnd(path, 'read', fd, st);
  // Our own writer keeps the pipe from reaching end of file when the last real writer
  // leaves. It must be the same FIFO: reopening a path can race with a rename.
  let keepalive: number;
  try {
    keepalive = openSync(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW);
  } catch (err) {
    closeQuietly(fd);
    throw fromSystemError(err, path, 'opening (keep-alive writer)');
  }
  let kst: Stats;
  try {
    kst = checkOpened(keepalive, path, allowShared, options.owner);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  if (kst.dev !== st.dev || kst.ino !== st.ino) {
    closeQuietly(fd);
    closeQuietly(keepalive);
    throw new UnsafeFifoError(`${path} was replaced by another FIFO while it was being opened; try again`);
  }
  return new FifoEnd(path, 'read', fd, st, keepalive);
}

/**
 * Opens `path` for writing. With no reader the kernel answers ENXIO; this waits
 * for a reader to appear (retrying the open, at most {@link MAX_READER_POLL_MS} ms
 * apart, so the wait costs next to no CPU) until `timeout` or `signal`.
 *
 * @throws ERR_NPIPE_TIMEOUT when no reader came within `timeout`; `signal.reason` on abort.
 * @throws ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND, ERR_NPIPE_PERMISSION.
 * @example
 * const end = await openFifoWriter('/tmp/jobs', { timeout: 5000 });
 */
export async function openFifoWriter(path: string, options: OpenFifoOptions = {}): Promise<FifoEnd> {
  checkPath(path);
  checkCreateMode(options);
  const wait = deadline(
    options,
    `no process opened ${path} for reading; start the reader, or wait longer (timeout)`,
  );
  try {
    for (let delay = 1; ; delay = Math.min(delay * 2, MAX_READER_POLL_MS)) {
      if (wait.signal?.aborted) throw wait.signal.reason;
      let fd: number;
      let created: boolean;
      try {
        ({ fd, created } = openNow(path, O_WRONLY, options));
      } catch (err) {
        if (!isErrno(err, 'ENXIO')) throw fromSystemError(err, path, 'opening for writing');
        // ENXIO also answers for a socket file: make sure we are waiting on a FIFO.
        // And refuse an unsafe FIFO now rather than after a reader shows up.
        const st = lstatSync(path, { throwIfNoEntry: false });
        if (st) checkStats(st, path, options.allowShared === true, options.owner);
        await sleep(delay, wait.signal);
        continue;
      }
      return new FifoEnd(path, 'write', fd, checkOpened(fd, path, options.allowShared === true, options.owner, created));
    }
  } finally {
    wait.dispose();
  }
}
