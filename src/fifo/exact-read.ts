/**
 * Reading a FIFO without taking more than asked for (issue 15 #15): what a reader
 * leaves in the pipe stays there for the next reader, so a reader that wants N
 * messages must read exactly their bytes. A Node stream reads as much as there is;
 * this reads the descriptor itself: read(2) of exact sizes where the caller knows
 * the size, and for text lines tee(2) to look at what is in the pipe before taking
 * bytes up to a "\n" (Linux; elsewhere one byte at a time).
 *
 * Waiting never parks a threadpool thread: the descriptor is non-blocking, and a
 * wait is a socket read of exactly one byte on the event loop (libuv stops reading
 * after it: the onread callback returns false), which then belongs to the stream
 * like any other byte.
 */
import { closeSync, readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { SPLICE_F_NONBLOCK, errnoError, loadLibc } from '../sys/libc.js';
import type { FifoEnd } from './open.js';

const LF = 0x0a;
/** Bytes tee(2) looks at in one go: the default capacity of the pipe it copies into. */
const PEEK_BYTES = 64 * 1024;
/** lines: from this many lines wanted on, a read of at most that many bytes is taken without tee(2). */
const DIRECT_LINES = 4096;
/** Reads between two turns of the event loop (see #turn). */
const TURN_EVERY = 256;
// pipe2(2) flags, Linux values (tee and pipe2 exist there only).
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const { EAGAIN, EINTR, ENOMEM } = osConstants.errno;

interface PeekPipe {
  read: number;
  write: number;
  buffer: Buffer;
}

/**
 * A FIFO's read end read in exact amounts. One call at a time (the caller awaits
 * each). `close()` closes the end. A call whose `signal` aborts resolves short (or
 * undefined) instead of rejecting, so that the caller can still use what was read.
 */
export class ExactFifoReader {
  readonly end: FifoEnd;
  #socket: Socket | undefined;
  readonly #wake = Buffer.alloc(1);
  /** A byte the one-byte wait read and nobody has taken yet, or -1. */
  #pending = -1;
  #eof = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  /** Awaited before each wait for the pipe (the caller writes out what it has). */
  beforeWait: (() => Promise<void>) | undefined;
  /** Reads since the event loop last had a turn. */
  #streak = 0;
  /** The pipe tee(2) copies into; null where tee cannot be used. */
  #peek: PeekPipe | null | undefined;

  constructor(end: FifoEnd) {
    this.end = end;
  }

  /** End of file was seen: no writer has the FIFO open and it is empty. */
  get eof(): boolean {
    return this.#eof && this.#pending < 0;
  }

  /** Fills all of `target`; resolves with the bytes read, fewer only at end of file or when `signal` aborts. */
  async fill(target: Buffer, signal?: AbortSignal): Promise<number> {
    await this.#turn();
    let at = 0;
    while (at < target.length) {
      const n = this.#readNow(target, at, target.length - at);
      if (n > 0) at += n;
      else if (n === 0 || !(await this.#wait(signal))) break;
    }
    return at;
  }

  /** Reads what there is, at least 1 byte and at most `target.length`; 0 at end of file or when `signal` aborts. */
  async some(target: Buffer, signal?: AbortSignal): Promise<number> {
    await this.#turn();
    for (;;) {
      const n = this.#readNow(target, 0, target.length);
      if (n >= 0) return n;
      if (!(await this.#wait(signal))) return 0;
    }
  }

  /**
   * Takes bytes up to and including the `lines`-th "\n" to come, at most `limit`
   * bytes (>= 1), never a byte past that "\n". Returns as soon as it has taken
   * something (perhaps without a "\n": the caller gathers a line across calls);
   * undefined at end of file or when `signal` aborts.
   */
  async takeLines(lines: number, limit: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    await this.#turn();
    for (;;) {
      const taken = this.#takeLinesNow(lines, limit);
      if (taken !== null) return taken;
      if (!(await this.#wait(signal))) return undefined;
    }
  }

  /**
   * While the pipe never runs dry no read waits, and the caller's loop would run on
   * microtasks alone: signal handlers and timers get a turn every so many reads.
   */
  async #turn(): Promise<void> {
    if (++this.#streak < TURN_EVERY) return;
    this.#streak = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  close(): void {
    this.#socket?.destroy();
    this.end.close();
    if (this.#peek) {
      closeSync(this.#peek.read);
      closeSync(this.#peek.write);
    }
    this.#peek = null;
  }

  /** What takeLines takes now: bytes, undefined at end of file, null when it must wait. */
  #takeLinesNow(lines: number, limit: number): Buffer | undefined | null {
    if (this.#pending >= 0) {
      // The wait's byte: part of the line whatever it is (and a line's end if it is "\n").
      const byte = Buffer.of(this.#pending);
      this.#pending = -1;
      return byte;
    }
    if (this.#error) throw this.#error;
    if (this.#eof) return undefined;
    if (lines >= DIRECT_LINES) {
      // A read of at most `lines` bytes holds at most `lines` "\n": no need to look first.
      const out = Buffer.allocUnsafe(Math.min(limit, lines));
      const n = this.#readNow(out, 0, out.length);
      return n > 0 ? out.subarray(0, n) : null;
    }
    const peek = this.#peekPipe();
    if (peek) {
      const libc = loadLibc();
      const seen = libc.tee!(this.end.fd, peek.write, Math.min(limit, peek.buffer.length), SPLICE_F_NONBLOCK);
      // 0: no writer. Before the first writer came that is no end of file yet: the
      // socket's wait tells (epoll reports a hang-up only after a writer left).
      if (seen === 0) return null;
      if (seen < 0) {
        const errno = libc.errno();
        if (errno === EAGAIN || errno === EINTR || errno === ENOMEM) return null;
        throw fromSystemError(errnoError(errno, 'tee'), this.end.path, 'looking into');
      }
      // The copy is all in the peek pipe already: read it out whole.
      for (let at = 0; at < seen; ) at += readSync(peek.read, peek.buffer, at, seen - at, null);
      let take = seen;
      for (let at = peek.buffer.indexOf(LF), found = 0; at !== -1 && at < seen; at = peek.buffer.indexOf(LF, at + 1)) {
        if (++found === lines) {
          take = at + 1;
          break;
        }
      }
      const out = Buffer.allocUnsafe(take);
      let got = 0;
      while (got < take) {
        const n = this.#readNow(out, got, take - got);
        if (n <= 0) break; // another reader of the same FIFO took them: keep what came
        got += n;
      }
      return out.subarray(0, got);
    }
    // No tee(2): one byte at a time, never past the "\n".
    const out = Buffer.allocUnsafe(Math.min(limit, PEEK_BYTES));
    let got = 0;
    let found = 0;
    let n = 0;
    while (got < out.length) {
      n = this.#readNow(out, got, 1);
      if (n <= 0) break;
      if (out[got++] === LF && ++found === lines) break;
    }
    return got > 0 ? out.subarray(0, got) : null;
  }

  /**
   * One non-blocking read: bytes read, 0 at end of file, -1 when it would wait.
   * read(2) answers 0 whenever no writer has the FIFO open, also before the first
   * one came: only the socket's wait says it is the end (see #wait).
   */
  #readNow(target: Buffer, offset: number, length: number): number {
    if (this.#pending >= 0) {
      target[offset] = this.#pending;
      this.#pending = -1;
      return 1;
    }
    if (this.#error) throw this.#error;
    if (this.#eof) return 0;
    try {
      const n = readSync(this.end.fd, target, offset, length, null);
      return n === 0 ? -1 : n;
    } catch (err) {
      if (isErrno(err, 'EAGAIN', 'EWOULDBLOCK', 'EINTR')) return -1;
      throw fromSystemError(err, this.end.path, 'reading');
    }
  }

  /** Waits until a byte (taken into #pending), end of file or an error: true; false when `signal` aborted first. */
  async #wait(signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#eof || this.#error) return true;
    this.#streak = 0;
    await this.beforeWait?.();
    if (signal?.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const onAbort = () => {
        this.#waiter = undefined;
        this.#socket?.pause();
        resolve(false);
      };
      this.#waiter = () => {
        this.#waiter = undefined;
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.#socket) {
        this.#socket.resume();
        return;
      }
      const socket = this.end.socket({
        onread: {
          buffer: this.#wake,
          callback: (bytes) => {
            if (bytes > 0) this.#pending = this.#wake[0]!;
            this.#waiter?.();
            return false; // one byte, then stop reading until the next wait
          },
        },
      });
      const ended = () => {
        this.#eof = true;
        this.#waiter?.();
      };
      socket.on('end', ended);
      socket.on('close', ended);
      socket.on('error', (err) => {
        this.#error = fromSystemError(err, this.end.path, 'reading');
        this.#waiter?.();
      });
      this.#socket = socket;
    });
  }

  #peekPipe(): PeekPipe | null {
    if (this.#peek !== undefined) return this.#peek;
    this.#peek = null;
    if (process.platform !== 'linux') return null;
    try {
      const libc = loadLibc();
      const fds = [0, 0];
      if (!libc.tee || !libc.pipe2 || libc.pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) return null;
      this.#peek = { read: fds[0]!, write: fds[1]!, buffer: Buffer.allocUnsafe(PEEK_BYTES) };
    } catch {
      // koffi or libc not loadable: one byte at a time.
    }
    return this.#peek;
  }
}
