/**
 * The shared-memory sender: one ring of its own (a segment, segment.ts), announced
 * to the receiver over the name's control FIFO. A send copies the message into
 * the ring and publishes it with one store (ring-writer.ts): no system call, unless
 * the receiver said it is going to sleep, when one byte on the control FIFO (the
 * doorbell) wakes it.
 *
 * A full ring: the sender spins for `busyPoll` µs if asked, then sets
 * SENDER_WAITING, looks once more, and sleeps until the receiver, which checks that
 * flag each time it frees room, rings this sender's own doorbell FIFO. No polling
 * of the ring while it sleeps: a check every 250 ms only looks whether the receiver
 * is still there (its control FIFO has a reader), so a dead receiver is
 * ERR_NPIPE_NO_READER, never a hang.
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { ClosedError, FrameTooLargeError, InvalidArgumentError, NoReaderError, UnsafeFifoError } from '../../errors.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import { deadline, sleep } from '../../util/abort.js';
import { checkBusyPoll } from '../../util/busy-poll.js';
import { mkfifoExactSync } from '../../fifo/mkfifo.js';
import { openFifoReader, type FifoEnd } from '../../fifo/open.js';
import { readerGone } from '../../fifo/poll.js';
import type { CallOptions, FrameSender } from '../../transport/types.js';
import { euid } from '../../sys/euid.js';
import { atExit, removeQuietly } from '../../util/at-exit.js';
import { findNameFolder, reclaimSegments } from './folder.js';
import { DEFAULT_CAPACITY, DROPPED, I_ATTACHED, I_CLOSED, MAX_CAPACITY, MIN_CAPACITY, REFUSED, isCapacity } from './layout.js';
import { RingWriter } from './ring-writer.js';
import { createSegment, type Mapping } from './segment.js';

const { O_WRONLY, O_NONBLOCK, O_NOFOLLOW } = constants;

/** One byte on a control or doorbell FIFO: "look at the rings". */
export const BELL = Buffer.from('!');
/** How often a sender waiting for room, or for a receiver, checks that the receiver is there. */
const LIVENESS_MS = 250;
const MAX_RECEIVER_POLL_MS = 50;

export interface ShmSenderOptions {
  /** Each wait (for a receiver, for room in the ring) with no progress for this long: ERR_NPIPE_TIMEOUT. 0: no receiver is an error at once. */
  timeout?: number;
  signal?: AbortSignal;
  /** Microseconds to spin (the event loop turning) before sleeping on a full ring. */
  busyPoll?: number;
  /** Bytes of this sender's ring, a power of two from 64 KiB to 1 GiB (default 8 MiB). */
  ringSize?: number;
  maxMessageSize: number;
}

/** Checks `ringSize`. @throws ERR_NPIPE_INVALID_ARG */
export function checkRingSize(value: unknown): number {
  if (value === undefined) return DEFAULT_CAPACITY;
  if (typeof value !== 'number' || !isCapacity(value)) {
    throw new InvalidArgumentError(`ringSize must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY} bytes, got ${String(value)}`);
  }
  return value;
}

/** The receiver's control FIFO, opened for writing and checked, or undefined while there is no receiver. */
function openControl(name: string): number | undefined {
  const dir = findNameFolder(name);
  if (!dir) return undefined;
  const path = `${dir}/control`;
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENXIO')) return undefined;
    throw fromSystemError(err, path, 'opening for writing');
  }
  const st = fstatSync(fd);
  if (!st.isFIFO() || st.uid !== euid() || (st.mode & 0o077) !== 0) {
    closeSync(fd);
    throw new UnsafeFifoError(`${path} is not a FIFO of yours closed to others; remove it (rm ${path}) and start the receiver again`);
  }
  return fd;
}

/**
 * Opens a sender on shm://`name`: waits for its receiver (`timeout`, `signal`),
 * makes this sender's segment and doorbell, and announces them.
 * @throws ERR_NPIPE_NO_READER (timeout 0 and no receiver), ERR_NPIPE_TIMEOUT, ERR_NPIPE_UNSAFE,
 *   ERR_NPIPE_INVALID_ARG, `signal.reason`.
 */
export async function openShmFrameSender(name: string, options: ShmSenderOptions): Promise<ShmFrameSender> {
  const busyPoll = checkBusyPoll(options.busyPoll);
  const capacity = checkRingSize(options.ringSize);
  if (options.signal?.aborted) throw options.signal.reason;
  const what = `no receiver has shm://${name} open; start it (npipe listen shm://${name}), or wait longer (timeout)`;
  let control = openControl(name);
  if (control === undefined) {
    if (options.timeout === 0) throw new NoReaderError(what);
    const wait = deadline(options, what);
    try {
      for (let delay = 1; control === undefined; delay = Math.min(delay * 2, MAX_RECEIVER_POLL_MS)) {
        await sleep(delay, wait.signal);
        control = openControl(name);
      }
    } finally {
      wait.dispose();
    }
  }
  const dir = findNameFolder(name)!;
  reclaimSegments(dir);
  let mapping: Mapping | undefined;
  let bell: FifoEnd | undefined;
  let files: string[] = [];
  try {
    const segment = createSegment(dir, capacity);
    mapping = segment.mapping;
    files = [segment.ringPath, segment.bellPath];
    mkfifoExactSync(segment.bellPath, 0o600);
    bell = await openFifoReader(segment.bellPath, { create: false, keepOpen: true });
    const sender = new ShmFrameSender(name, control, mapping, bell, files, options.maxMessageSize, busyPoll, options.timeout);
    await sender.announce(`+${segment.base}\n`, options);
    return sender;
  } catch (err) {
    mapping?.unmap();
    bell?.close();
    for (const file of files) removeQuietly(file);
    closeSync(control);
    throw err;
  }
}

interface Job {
  message: Uint8Array;
  cursor: { at: number };
  signal: AbortSignal | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

const RESOLVED = Promise.resolve();

export class ShmFrameSender implements FrameSender {
  readonly #name: string;
  readonly #control: number;
  readonly #mapping: Mapping;
  readonly #ring: RingWriter;
  readonly #bell: FifoEnd;
  readonly #files: string[];
  readonly #limit: number;
  readonly #busyPoll: number;
  readonly #timeout: number | undefined;
  #queue: Job[] = [];
  #pumping = false;
  #failure: unknown;
  #closing: Promise<void> | undefined;
  #released = false;
  /** Called when the ring may have room (the doorbell rang), while waiting. */
  #wake: (() => void) | undefined;
  #idle: Array<() => void> = [];
  readonly #liveness: NodeJS.Timeout;
  readonly #undoAtExit: () => void;

  constructor(name: string, control: number, mapping: Mapping, bell: FifoEnd, files: string[], limit: number, busyPoll: number, timeout: number | undefined) {
    this.#name = name;
    this.#control = control;
    this.#mapping = mapping;
    this.#ring = new RingWriter(mapping);
    this.#bell = bell;
    this.#files = files;
    this.#limit = limit;
    this.#busyPoll = busyPoll;
    this.#timeout = timeout;
    const socket = bell.socket();
    socket.on('data', () => this.#wake?.());
    socket.on('error', () => {});
    socket.unref(); // a sender that is not waiting does not keep the process alive
    this.#liveness = setInterval(() => this.#checkReceiver(), LIVENESS_MS);
    this.#liveness.unref();
    this.#undoAtExit = atExit(() => this.#release(true));
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Fails this sender if its receiver is gone, or has dropped it. */
  #checkReceiver(): void {
    if (this.#failure || this.#released) return;
    const attached = Atomics.load(this.#mapping.i32, I_ATTACHED);
    if (attached === DROPPED) {
      this.#fail(new NoReaderError(`the receiver of shm://${this.#name} dropped this sender: it found a record in its ring it could not accept`));
    } else if (attached === REFUSED) {
      this.#fail(new NoReaderError(`the receiver of shm://${this.#name} refused this sender: it has as many senders as it takes (1024); close some, or use another name`));
    } else if (readerGone(this.#control)) {
      this.#fail(this.#noReader());
    }
  }

  #noReader(): NoReaderError {
    return new NoReaderError(`the receiver of shm://${this.#name} went away`);
  }

  /** Writes the announcement on the control FIFO (at most PIPE_BUF bytes: one write, never mixed with another's). */
  async announce(line: string, options: { timeout?: number; signal?: AbortSignal }): Promise<void> {
    const bytes = Buffer.from(line);
    const wait = deadline(options, `the receiver of shm://${this.#name} takes no announcement (its control FIFO is full)`);
    try {
      for (let delay = 1; ; delay = Math.min(delay * 2, MAX_RECEIVER_POLL_MS)) {
        try {
          writeSync(this.#control, bytes);
          return;
        } catch (err) {
          if (isErrno(err, 'EPIPE')) throw this.#noReader();
          if (!isErrno(err, 'EAGAIN', 'EINTR')) throw fromSystemError(err, `shm://${this.#name}`, 'announcing to');
        }
        await sleep(delay, wait.signal);
      }
    } finally {
      wait.dispose();
    }
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    if (this.#closing) return Promise.reject(new ClosedError('this sender is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    if (message.length > this.#limit) return Promise.reject(new FrameTooLargeError(message.length, this.#limit));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const cursor = { at: 0 };
    if (this.#queue.length === 0) {
      try {
        const done = this.#ring.write(message, cursor);
        if (done) {
          // Published once for all the sends of this turn, before any of their callers resumes
          // (this microtask is queued before the continuation of an await on them).
          if (!this.#flushing) {
            this.#flushing = true;
            queueMicrotask(this.#flush);
          }
          return RESOLVED;
        }
        this.#publish();
      } catch (err) {
        this.#fail(err);
        return Promise.reject(err);
      }
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ message, cursor, signal, resolve, reject });
      void this.#pump();
    });
  }

  #flushing = false;
  readonly #flush = () => {
    this.#flushing = false;
    if (!this.#released) this.#publish();
  };

  /** Publishes what was written; rings the receiver's doorbell if it sleeps. */
  #publish(): void {
    if (this.#ring.publish()) this.#ringBell();
  }

  #ringBell(): void {
    try {
      writeSync(this.#control, BELL);
    } catch (err) {
      // EAGAIN: the control FIFO is full of doorbells already; the receiver will wake.
      if (isErrno(err, 'EPIPE')) this.#fail(this.#noReader());
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#failure) {
        const job = this.#queue[0]!;
        if (job.cursor.at === 0 && job.signal?.aborted) {
          this.#queue.shift();
          job.reject(job.signal.reason);
          continue;
        }
        const done = this.#ring.write(job.message, job.cursor);
        this.#publish();
        if (done) {
          this.#queue.shift();
          if (job.signal?.aborted) job.reject(job.signal.reason); // went out whole all the same
          else job.resolve();
          continue;
        }
        await this.#waitForRoom(this.#ring.needs(job.message, job.cursor), job);
      }
    } catch (err) {
      this.#fail(err);
    } finally {
      this.#pumping = false;
      if (this.#queue.length === 0 || this.#failure) for (const idle of this.#idle.splice(0)) idle();
    }
  }

  /**
   * Waits until `need` bytes are free: spins `busyPoll` µs, then says so
   * (SENDER_WAITING) and sleeps until the receiver's doorbell. Returns early when
   * the head job, not started, is aborted (the pump then drops it).
   */
  async #waitForRoom(need: number, job: Job): Promise<void> {
    if (this.#busyPoll > 0) {
      const until = performance.now() + this.#busyPoll / 1000;
      while (performance.now() < until) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.#ring.free() >= need) return;
      }
    }
    this.#ring.waiting(true);
    if (this.#ring.free() >= need) {
      this.#ring.waiting(false);
      return;
    }
    const wait = deadline(
      { ...(this.#timeout === undefined ? {} : { timeout: this.#timeout }) },
      `the receiver of shm://${this.#name} took nothing from this sender's ring; it may have stopped receiving`,
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const check = setInterval(() => {
          this.#checkReceiver();
          this.#wake?.();
        }, LIVENESS_MS);
        const onAbort = () => done();
        const onTimeout = () => done(wait.signal!.reason);
        const done = (err?: unknown) => {
          clearInterval(check);
          this.#wake = undefined;
          job.signal?.removeEventListener('abort', onAbort);
          wait.signal?.removeEventListener('abort', onTimeout);
          this.#ring.waiting(false);
          if (err === undefined) resolve();
          else reject(err);
        };
        // Called from the doorbell's 'data' and a timer: it must never throw (a HEAD the
        // receiver wrote outside the ring makes free() throw), or the process would die of it.
        this.#wake = () => {
          try {
            if (Atomics.load(this.#mapping.i32, I_ATTACHED) < 0) this.#checkReceiver();
            if (this.#failure) return done(this.#failure);
            if (this.#ring.free() >= need) return done();
            this.#ring.waiting(true);
            if (this.#ring.free() >= need) done();
          } catch (err) {
            done(err);
          }
        };
        if (job.cursor.at === 0) job.signal?.addEventListener('abort', onAbort, { once: true });
        wait.signal?.addEventListener('abort', onTimeout, { once: true });
      });
    } finally {
      wait.dispose();
    }
  }

  #fail(err: unknown): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const job of this.#queue.splice(0)) job.reject(err);
    this.#wake?.();
  }

  close(options: CallOptions = {}): Promise<void> {
    return (this.#closing ??= (async () => {
      const dropUnstarted = () => {
        const keep = this.#queue.filter((job, i) => i === 0 && job.cursor.at > 0);
        for (const job of this.#queue) if (!keep.includes(job)) job.reject(new ClosedError('the sender was closed before this message was sent'));
        this.#queue = keep;
      };
      if (options.signal?.aborted) dropUnstarted();
      else options.signal?.addEventListener('abort', dropUnstarted, { once: true });
      try {
        if (this.#queue.length > 0 && !this.#failure) await new Promise<void>((resolve) => this.#idle.push(resolve));
      } finally {
        options.signal?.removeEventListener('abort', dropUnstarted);
        this.#release(false);
      }
    })());
  }

  /**
   * Says CLOSED in the segment and rings the receiver, then lets go of everything.
   * The files go too unless the receiver, alive, has yet to map them (it removes
   * them then): published messages are never thrown away with them.
   */
  #release(atExit: boolean): void {
    if (this.#released) return;
    this.#released = true;
    clearInterval(this.#liveness);
    if (!atExit) this.#undoAtExit();
    const i32 = this.#mapping.i32;
    try {
      this.#ring.publish(); // the sends of this last turn
    } catch {
      // nothing to publish to
    }
    Atomics.store(i32, I_CLOSED, 1);
    const attached = Atomics.load(i32, I_ATTACHED) !== 0;
    const gone = readerGone(this.#control);
    let drained = true;
    try {
      drained = this.#ring.drained();
    } catch {
      // a receiver that wrote nonsense: nothing worth keeping
    }
    if (!gone) this.#ringBell();
    if (!attached && (drained || gone)) for (const file of this.#files) removeQuietly(file);
    this.#mapping.unmap();
    this.#bell.close();
    try {
      closeSync(this.#control);
    } catch {
      // closed already
    }
  }
}
