/**
 * The raw format as a byte stream between a descriptor and a FIFO (Linux):
 * `npipe send --format raw < file` and `npipe listen --format raw > out`. Moved
 * with splice(2) inside the kernel (a file into the FIFO; the FIFO into a pipe or
 * /dev/null), or, into a regular file, read(2) and write(2) of a pipe-full (splice
 * into a file was the slower on ext4). Either way nothing goes through the event
 * loop while the pipe keeps up.
 *
 * Waiting: when the pipe is full (sending) or empty (receiving), poll(2) waits for
 * it for up to POLL_WAIT_MS, on this thread: a pipe-full costs one system call, not
 * a turn of the event loop, an epoll wake-up and a copy through a socket (on a VM
 * the wake-ups held the stream to a fraction of the kernel's rate; docs/TUNING.md).
 * The event loop gets a turn at least every TURN_BUDGET_MS and whenever a signal
 * interrupts the wait. Only a pipe that stays full or empty for longer (a slow or
 * idle peer) makes the wait go to the event loop: one piece through a socket, with
 * epoll, not a blocked thread, doing the waiting.
 *
 * The pipe is grown to the largest the system allows (/proc/sys/fs/pipe-max-size)
 * unless a size was asked for. Where splice refuses the descriptors (EINVAL: a
 * file system without splice), everything goes through the socket instead.
 */
import { fstatSync, readFileSync, readSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { NoReaderError, TimeoutError } from '../../errors.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import { POLLIN, POLLOUT, pollOne, spliceNow, type FifoEnd } from '../../fifo/index.js';
import { checkTimeout, deadline } from '../../util/abort.js';
import { openReaderEnd, openWriterEnd, orElse } from './ends.js';
import type { FifoReceiverOptions, FifoSenderOptions } from './options.js';

/** Bytes moved through this process at a time while waiting, or when splice cannot be used. */
const COPY_PIECE = 64 * 1024;
/** Copying: the socket stops reading while this many bytes wait to be written out. */
const COPY_HIGH_WATER_BYTES = 1024 * 1024;
/** The most bytes moved in one turn of the event loop before signals and timers get to run. */
const TURN_BUDGET_BYTES = 16 * 1024 * 1024;
/** The longest this lane holds the thread (splicing and poll waits together) before the event loop gets a turn. */
const TURN_BUDGET_MS = 20;
/** One poll(2) wait for a full or empty pipe; a pipe that stays so longer is waited for on the event loop. */
const POLL_WAIT_MS = 20;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Bytes moved and time spent since the event loop last had a turn. */
class TurnBudget {
  #left = TURN_BUDGET_BYTES;
  #since = performance.now();

  /** Counts `bytes`; true when TURN_BUDGET_BYTES or TURN_BUDGET_MS have gone by and the loop should yield (it starts counting again). */
  spend(bytes: number): boolean {
    this.#left -= bytes;
    if (this.#left > 0 && performance.now() - this.#since < TURN_BUDGET_MS) return false;
    this.restart();
    return true;
  }

  /** The event loop had a turn: count from now. */
  restart(): void {
    this.#left = TURN_BUDGET_BYTES;
    this.#since = performance.now();
  }
}

let pipeMaxSize: number | undefined;

/**
 * Grows the pipe behind `end` to /proc/sys/fs/pipe-max-size (1 MiB by default) when
 * it is smaller and no size was asked for: a raw stream then fills and drains it a
 * quarter as often as at 256 KiB. Best effort: the kernel may refuse (a user over
 * its pipe-user-pages limit) and the pipe works as it is; never shrinks a pipe
 * someone made larger.
 */
function growPipe(end: FifoEnd, asked: number | undefined): void {
  if (asked !== undefined || process.platform !== 'linux') return;
  pipeMaxSize ??= orElse(() => Number.parseInt(readFileSync('/proc/sys/fs/pipe-max-size', 'latin1'), 10) || 0, 0);
  if (pipeMaxSize > orElse(() => end.getPipeSize(), pipeMaxSize)) orElse(() => end.setPipeSize(pipeMaxSize!), 0);
}

/**
 * Waits in poll(2) (POLL_WAIT_MS at most) for `fd` to be ready for `events`.
 * @returns true: ready, try again (after a turn of the event loop if a signal
 *   came or the budget is spent); false: it stayed full or empty, wait on the event loop.
 */
async function pollBriefly(fd: number, events: number, turns: TurnBudget): Promise<boolean> {
  const waited = pollOne(fd, events, POLL_WAIT_MS);
  if (waited === 'timeout') return false;
  if (waited === 'interrupted' || turns.spend(0)) {
    await nextTurn();
    turns.restart();
  }
  return true;
}

/**
 * Writes `data` whole through `stream` and waits until it is handed to the kernel
 * (not merely queued). `stall`: rejects with ERR_NPIPE_TIMEOUT when the kernel
 * takes no byte of it for `stall.timeout` ms (issue 15 #14).
 */
function writeThrough(stream: NodeJS.WritableStream, data: Uint8Array, signal?: AbortSignal, stall?: { timeout: number; path: string }): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let watch: NodeJS.Timeout | undefined;
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(watch);
    };
    const onAbort = () => {
      done();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.write(data, (err?: Error | null) => {
      done();
      if (err) reject(err);
      else resolve();
    });
    if (stall) {
      const every = Math.max(5, Math.min(1000, stall.timeout / 4));
      let lastQueued = -1;
      let lastProgress = Date.now();
      const tick = () => {
        const queued = (stream as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? -1;
        const now = Date.now();
        if (queued !== lastQueued) {
          lastQueued = queued;
          lastProgress = now;
        } else if (now - lastProgress >= stall.timeout) {
          done();
          reject(new TimeoutError(`${stall.path} took no byte for ${stall.timeout} ms: its reader is not reading; check the reader, or wait longer (timeout)`));
          return;
        }
        watch = setTimeout(tick, every).unref();
      };
      watch = setTimeout(tick, every).unref();
    }
  });
}

function noReader(path: string, cause: unknown): NoReaderError {
  return new NoReaderError(`the reader of ${path} went away (EPIPE); start a reader and send again`, { cause });
}

/**
 * Sends the rest of the regular file open on `fd` (from its position to its end)
 * into the FIFO at `path`, spliced. Opens the FIFO as a sender does (waiting for a
 * reader up to `timeout`, `pipeSize`), and closes it when done. `waitForReader`
 * is not supported here (the caller copies instead).
 *
 * When the pipe is full, one piece is read from the file (a short synchronous read
 * of a regular file) and written through the FIFO end's socket: libuv writes it when
 * epoll says there is room, and splicing goes on from there.
 *
 * @returns the bytes sent.
 * @throws ERR_NPIPE_NO_READER (the reader went away), ERR_NPIPE_TIMEOUT and the other
 *   errors of opening a sender; `signal.reason` when `signal` aborts.
 */
export async function sendFileRaw(fd: number, path: string, options: FifoSenderOptions & { onOpen?: () => void; progress?: { bytes: number } }): Promise<number> {
  const { signal, progress } = options;
  const timeout = checkTimeout(options.timeout);
  const stall = timeout === undefined || timeout === 0 ? undefined : { timeout, path };
  const end = await openWriterEnd(path, options);
  options.onOpen?.();
  let socket: Socket | undefined;
  try {
    growPipe(end, options.pipeSize);
    const piece = Math.max(orElse(() => end.getPipeSize(), 0), COPY_PIECE);
    let splicing = true;
    let copy: Buffer | undefined;
    let total = 0;
    const turns = new TurnBudget();
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      let n = -1;
      if (splicing) {
        try {
          n = spliceNow(fd, end.fd, piece);
        } catch (err) {
          if (isErrno(err, 'EPIPE')) throw noReader(path, err);
          if (!isErrno(err, 'EINVAL')) throw fromSystemError(err, path, 'splicing into');
          splicing = false; // nothing was moved: copy from here on
        }
      }
      if (n === 0) return total;
      if (n > 0) {
        total += n;
        if (progress) progress.bytes = total;
        if (turns.spend(n)) await nextTurn();
        continue;
      }
      // The pipe is full: wait for room in poll(2), or, if the reader is slow, on the event loop.
      if (splicing && (await pollBriefly(end.fd, POLLOUT, turns))) continue;
      // The pipe stays full (or splice cannot be used): one piece through the socket.
      copy ??= Buffer.allocUnsafeSlow(splicing ? COPY_PIECE : piece);
      const got = readSync(fd, copy, 0, copy.length, null);
      if (got === 0) return total;
      if (!socket) {
        socket = end.socket();
        // Errors also come through the write's callback, where they are handled.
        socket.on('error', () => {});
      }
      try {
        await writeThrough(socket, copy.subarray(0, got), signal, stall);
      } catch (err) {
        if (signal?.aborted && err === signal.reason) throw err;
        if (err instanceof TimeoutError) throw err;
        if (isErrno(err, 'EPIPE')) throw noReader(path, err);
        throw fromSystemError(err, path, 'writing to');
      }
      turns.restart();
      total += got;
      if (progress) progress.bytes = total;
    }
  } finally {
    end.close();
  }
}

/**
 * One read(2) of up to a pipe-full from the FIFO, all of it written into the regular
 * file `outFd` (a file takes every byte at once, or fails: ENOSPC, EIO).
 * @returns the bytes moved; 0 at end of file; -1 when the FIFO is empty.
 */
function copyToFile(fifoFd: number, outFd: number, buffer: Buffer, path: string): number {
  let got: number;
  try {
    got = readSync(fifoFd, buffer, 0, buffer.length, null);
  } catch (err) {
    if (isErrno(err, 'EAGAIN')) return -1;
    throw fromSystemError(err, path, 'reading from');
  }
  try {
    for (let done = 0; done < got; ) done += writeSync(outFd, buffer, done, got - done);
  } catch (err) {
    throw fromSystemError(err, `the output (fd ${outFd})`, 'writing what came from ' + path + ' to');
  }
  return got;
}

export interface ReceiveRawOptions extends FifoReceiverOptions {
  /** Reject with ERR_NPIPE_TIMEOUT when the pipe stays empty this many milliseconds. */
  idleTimeout?: number;
  /** Kept at the bytes received so far, as they move (`--progress`). */
  progress?: { bytes: number };
}

/**
 * Moves the raw byte stream arriving on the FIFO at `path` into descriptor `outFd`
 * (a regular file, /dev/null or a pipe), spliced. `output` is a stream over the same
 * descriptor (process.stdout for fd 1): the pieces that go through this process
 * (while waiting for the pipe, or when `outFd` is a full pipe) are written through
 * it, each handed to the kernel before splicing goes on, so the order is kept.
 *
 * Ends at end of file (`keepOpen: false` and every writer gone), or when `signal`
 * aborts: then it returns normally, with everything read from the pipe written.
 *
 * @returns the bytes received.
 * @throws ERR_NPIPE_TIMEOUT after `idleTimeout`; the output's EPIPE (a Node-style
 *   errno error) when whoever reads `outFd` went away; the errors of opening a receiver.
 */
export async function receiveRawInto(path: string, outFd: number, output: NodeJS.WritableStream, options: ReceiveRawOptions): Promise<number> {
  const { signal, idleTimeout, progress } = options;
  const end = await openReaderEnd(path, options);
  try {
    growPipe(end, options.pipeSize);
    const piece = Math.max(orElse(() => end.getPipeSize(), 0), COPY_PIECE);
    let splicing = true;
    // Into a regular file, read(2) and write(2) a pipe-full at a time instead of
    // splicing: on ext4, splice into a file ran at a third of read/write's rate here
    // (docs/TUNING.md). Still never through the event loop.
    const fileBuffer = orElse(() => fstatSync(outFd).isFile(), false) ? Buffer.allocUnsafeSlow(piece) : undefined;
    let total = 0;
    const turns = new TurnBudget();
    // The socket reads only while this process waits for the pipe; what it reads
    // lands here, and the waiting promise is settled.
    const readBuffer = Buffer.allocUnsafeSlow(COPY_PIECE);
    const arrived: Buffer[] = [];
    let arrivedBytes = 0;
    let ended = false;
    let failed: unknown;
    let wake: (() => void) | undefined;
    let socket: Socket | undefined;
    const waitForPipe = async (): Promise<void> => {
      if (!socket) {
        socket = end.socket({
          onread: {
            buffer: readBuffer,
            callback: (bytes) => {
              arrived.push(Buffer.from(readBuffer.subarray(0, bytes)));
              arrivedBytes += bytes;
              // Splicing: one piece, then back to splice. Copying: read on up to a limit.
              if (splicing || arrivedBytes >= COPY_HIGH_WATER_BYTES) socket!.pause();
              wake?.();
              return true;
            },
          },
        });
        socket.on('end', () => {
          ended = true;
          wake?.();
        });
        socket.on('error', (err) => {
          failed ??= fromSystemError(err, path, 'reading from');
          wake?.();
        });
      } else socket.resume();
      const wait = deadline(
        { ...(idleTimeout === undefined ? {} : { timeout: idleTimeout }), ...(signal ? { signal } : {}) },
        `no bytes arrived on ${path}; check that a writer is sending, or wait longer (--timeout)`,
      );
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(wait.signal!.reason);
          wake = () => {
            wait.signal?.removeEventListener('abort', onAbort);
            resolve();
          };
          if (arrived.length > 0 || ended || failed !== undefined) wake();
          else if (wait.signal?.aborted) onAbort();
          else wait.signal?.addEventListener('abort', onAbort, { once: true });
        });
      } finally {
        wake = undefined;
        wait.dispose();
        if (splicing) socket.pause();
      }
    };
    const writeOut = async (data: Buffer) => {
      // Not cut short by `signal`: what was read from the pipe is written out.
      await writeThrough(output, data);
      total += data.length;
      if (progress) progress.bytes = total;
    };
    for (;;) {
      if (signal?.aborted) return total;
      let n = -1;
      if (splicing && fileBuffer) n = copyToFile(end.fd, outFd, fileBuffer, path);
      else if (splicing) {
        try {
          n = spliceNow(end.fd, outFd, piece);
        } catch (err) {
          if (isErrno(err, 'EPIPE')) throw err;
          if (!isErrno(err, 'EINVAL')) throw fromSystemError(err, path, 'splicing from');
          splicing = false; // nothing was moved: copy from here on
        }
      }
      if (n > 0) {
        total += n;
        if (progress) progress.bytes = total;
        if (turns.spend(n)) await nextTurn();
        continue;
      }
      const waiting = n === -1 && splicing && !fileBuffer && orElse(() => end.bytesInPipe(), 0) > 0;
      // Bytes are waiting, so the output (a pipe) is full; or the FIFO is empty. Either
      // way, wait in poll(2) first, and on the event loop if that takes longer.
      if (n === -1 && splicing && (await pollBriefly(waiting ? outFd : end.fd, waiting ? POLLOUT : POLLIN, turns))) continue;
      if (waiting) {
        // The output stays full: one piece through `output`, which waits for room on the event loop.
        let got = 0;
        try {
          got = readSync(end.fd, readBuffer, 0, readBuffer.length, null);
        } catch (err) {
          if (!isErrno(err, 'EAGAIN')) throw fromSystemError(err, path, 'reading from');
        }
        if (got > 0) await writeOut(Buffer.from(readBuffer.subarray(0, got)));
        turns.restart();
        continue;
      }
      // The pipe is empty (or no writer has it open, or splice cannot be used): wait
      // on the event loop for the next bytes, or the end of file.
      try {
        await waitForPipe();
      } catch (err) {
        if (signal?.aborted && err === signal.reason) return total;
        throw err;
      }
      while (arrived.length > 0) {
        const data = arrived.shift()!;
        arrivedBytes -= data.length;
        await writeOut(data);
      }
      turns.restart();
      if (!splicing && !ended && failed === undefined) socket?.resume();
      if (failed !== undefined) throw failed;
      if (ended) return total;
    }
  } finally {
    end.close();
  }
}
