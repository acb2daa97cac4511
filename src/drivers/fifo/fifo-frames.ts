/**
 * The FIFO transport: framing over the non-blocking FIFO ends of ../fifo.
 */
import type { Socket } from 'node:net';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { BusyError, ClosedError, InvalidArgumentError, NoReaderError, NpipeError, TimeoutError } from '../../errors.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import {
  FifoEnd,
  lock,
  openFifoReader,
  openFifoWriter,
  tryLock,
  unlock,
  writeNow,
  type LockMode,
  type OpenFifoOptions,
  type OpenReaderOptions,
} from '../../fifo/index.js';
import { PIPE_BUF, type DropInfo, type FrameDecoder, type Framing } from '../../framing/index.js';
import type { CallOptions, FrameReceiver, FrameSender } from '../../transport/types.js';
import { allocAligned } from '../../sys/aligned.js';
import { checkTimeout } from '../../util/abort.js';
import { badTarget, copyInto } from '../../transport/into.js';

/** The receiver stops reading from the pipe while it holds this many bytes of messages not yet received. */
export const RECEIVE_HIGH_WATER_BYTES = 1024 * 1024;
/** The pipe capacity a receiver asks for unless told otherwise: fewer wake-ups than the kernel's 64 KiB, and reads small enough to keep the reader's memory low. */
export const DEFAULT_RECEIVER_PIPE_SIZE = 256 * 1024;
/** Reads are copied out in pieces of this size while messages come out as views. */
const COPY_PIECE = 64 * 1024;
/** Messages at least this large are not taken as a sign that reads should be copied whole. */
const LARGE_MESSAGE = 64 * 1024;
/**
 * Largest read for the formats that do not need whole-pipe reads, and largest
 * write. A read or a write holds the pipe's lock while it copies, so 1 MiB reads
 * against 1 MiB writes make reader and writer take turns over the whole pipe, the
 * slowest pattern: in C with epoll, 1.3-1.8 GB/s against 1.6-2.5 with either
 * side in 256 KiB pieces (docs/TUNING.md).
 */
const PIECE_READ_BYTES = 256 * 1024;
const PIECE_WRITE_BYTES = 256 * 1024;
/** The smallest read buffer; it is as large as the pipe when the pipe is larger. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** How often a frames receiver checks whether writers with a message in progress are still alive. */
export const SWEEP_INTERVAL_MS = 500;

/**
 * `timeout` for a sender means no progress for that long: no reader came (open,
 * and each wait for the next reader), or the pipe took no byte of what is being
 * written (a reader that opened the FIFO and stopped reading, or another writer
 * holding the writers' lock). Then ERR_NPIPE_TIMEOUT. 0: do not wait for a reader;
 * writes are not bounded then.
 */
export interface FifoSenderOptions extends OpenFifoOptions {
  /** Pipe capacity to ask for once open (Linux, F_SETPIPE_SZ). */
  pipeSize?: number;
  /**
   * What to do when the reader goes away. false (default): pending and later sends
   * fail with ERR_NPIPE_NO_READER. true: wait for the next reader (each wait up to
   * `timeout`, then ERR_NPIPE_TIMEOUT) and carry on; a message the departure cut is
   * sent again whole (the reader drops the cut copy; frames format).
   */
  waitForReader?: boolean;
}

export interface FifoReceiverOptions extends OpenReaderOptions {
  /** Pipe capacity to ask for (Linux). Default: 256 KiB if the kernel allows, else its default. */
  pipeSize?: number;
  /** frames: the most bytes kept for incomplete messages, all writers together. */
  maxPartialBytes?: number;
  /** frames: called for each message dropped rather than delivered torn. */
  onDrop?: (info: DropInfo) => void;
  /**
   * frames: a message in progress that gets no new packet for this many
   * milliseconds while the receiver is reading is dropped (`stalled`), so that a
   * writer that stops mid-message (or forges a first packet) cannot hold the
   * memory for partial messages for ever. Default 30 000.
   */
  partialTimeout?: number;
}

/** frames: the default `partialTimeout`. */
export const DEFAULT_PARTIAL_TIMEOUT_MS = 30_000;

/** Messages that settle together: those queued while a write was in flight, or one message with its own signal. */
interface Group {
  promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  /** Messages not yet written. */
  remaining: number;
  settled: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Pending {
  /** The message, or (sendUnits) bytes already in the format, copied into the batch as they are. */
  message: Uint8Array;
  encoded: boolean;
  /**
   * Size of its one unit, or -1 for a message of several packets (frames). Up to
   * PIPE_BUF: copied straight into the batch buffer. Over PIPE_BUF (formats without
   * packets): its units come from `units`, written under the exclusive lock.
   */
  size: number;
  units: Iterator<Buffer> | undefined;
  /** The next unit of a large message; undefined once all are written. */
  next: Buffer | undefined;
  /** frames, several packets: payload bytes already put in packets. */
  cursor: { at: number } | undefined;
  started: boolean;
  group: Group;
  /** Messages it carries: 1, or (staged) a run of small messages already encoded into `message`. */
  count: number;
  /** `message` is a PIPE_BUF buffer that later small messages of the same group are encoded into (see send()). */
  staged: boolean;
}

interface PendingWrite {
  data: Buffer;
  written: number;
  lock: LockMode | undefined;
  /** Keep the lock after this write: more units of the same large message follow. */
  holdLock: boolean;
  /** Queue entries this write finishes. */
  completed: number;
}

/**
 * Units up to this size are encoded into a shared staging buffer when sent (see
 * FifoFrameSender.send). Larger ones gain little from it (a few per PIPE_BUF) and
 * would pay for a staging buffer every few messages.
 */
const STAGED_UNIT_BYTES = PIPE_BUF / 8;

/**
 * Staging buffers a sender keeps for reuse once their bytes are in the pipe: 1 MiB.
 * A producer runs ahead of the pipe by as much as it queues (a hundred or more
 * buffers in the bench), and each buffer allocated afresh costs about 1 µs plus
 * its collection. Keeping only 4 made most of them fresh: with 256, sender CPU per
 * 64 B message fell by 13-18% into a C reader (alternating runs).
 */
const SPARE_STAGING_BUFFERS = 256;

/** The most a sender writes in one turn of the event loop before letting other work run. */
export const PUMP_BUDGET_BYTES = 1024 * 1024;

function newGroup(signal?: AbortSignal): Group {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A caller that does not await a send must not see an unhandled rejection: the
  // error also reaches every later send and close().
  promise.catch(() => {});
  return { promise, resolve, reject, remaining: 0, settled: false, signal, onAbort: undefined };
}

export async function openFifoFrameSender(path: string, framing: Framing, options: FifoSenderOptions = {}): Promise<FifoFrameSender> {
  const end = await openWriterEnd(path, options);
  return new FifoFrameSender(end, framing, options);
}

/** Opens the write end (waiting for a reader as `options` say) with the pipe capacity asked for. */
export async function openWriterEnd(path: string, options: FifoSenderOptions): Promise<FifoEnd> {
  return withPipeSize(await openFifoWriter(path, options), options.pipeSize);
}

/** Applies the capacity asked for, closing the end if the kernel refuses. */
function withPipeSize(end: FifoEnd, pipeSize: number | undefined): FifoEnd {
  if (pipeSize === undefined) return end;
  try {
    end.setPipeSize(pipeSize);
  } catch (err) {
    end.close();
    throw err;
  }
  return end;
}

/**
 * Writes frames in call order. Every write() is either at most PIPE_BUF bytes of
 * whole units (atomic, so several writers never tear each other), or (a piece of)
 * one unit over PIPE_BUF written alone under the FIFO's exclusive writer lock
 * (formats without packets). One write is in flight at a time, so `send()` never
 * runs ahead of the pipe by more than the messages the caller has not awaited.
 */
export class FifoFrameSender implements FrameSender {
  readonly framing: Framing;
  #end: FifoEnd;
  #socket!: Socket;
  #options: FifoSenderOptions;
  /** Messages in order: [#head, length) are waiting or being written. */
  #queue: Pending[] = [];
  #head = 0;
  /** The group new messages without a signal join, until a write starts. */
  #open: Group | undefined;
  /** Staging buffers (see send()) whose bytes are in the pipe, for reuse. */
  #spare: Buffer[] = [];
  /** Whole small units are copied here and written together; reused once a write completes. */
  #batch = Buffer.allocUnsafeSlow(PIPE_BUF);
  /** A write prepared and not yet fully in the pipe. */
  #pending: PendingWrite | undefined;
  #writing = false;
  #scheduled = false;
  /**
   * The writers' lock this sender holds, if any. Shared: kept from one small batch
   * to the next for the rest of a pump turn (one flock pair per turn, not per 4 KiB
   * write); exclusive: for the units of one large message only.
   */
  #lockHeld: LockMode | undefined;
  #reconnecting = false;
  #error: NpipeError | undefined;
  #closing: Promise<void> | undefined;
  #closeController = new AbortController();
  #drained: (() => void) | undefined;
  /** Times the sender waited for a new reader and carried on. */
  reconnects = 0;
  /** `timeout`: a write that makes no progress for this long fails (undefined or 0: never). */
  #writeTimeout: number | undefined;
  /** The no-progress check while a write waits (see #watchWrites). */
  #watch: NodeJS.Timeout | undefined;
  #progressed = false;
  #lastProgress = 0;
  /** libuv's count of bytes waiting to be written at the last check: it falls as the pipe takes them. */
  #lastQueued = -1;

  constructor(end: FifoEnd, framing: Framing, options: FifoSenderOptions = {}) {
    this.#end = end;
    this.framing = framing;
    this.#options = options;
    const timeout = checkTimeout(options.timeout);
    this.#writeTimeout = timeout === 0 ? undefined : timeout;
    this.#attach(end);
  }

  get end(): FifoEnd {
    return this.#end;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  #attach(end: FifoEnd): void {
    this.#end = end;
    this.#socket = end.socket();
    // Errors also come through each write's callback, where they are handled.
    this.#socket.on('error', () => {});
  }

  send(message: Uint8Array, options: CallOptions = {}): Promise<void> {
    const refused = this.#refusal();
    if (refused) return refused;
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let size: number;
    let units: Iterator<Buffer> | undefined;
    let next: Buffer | undefined;
    let cursor: { at: number } | undefined;
    try {
      size = this.framing.unitSize(message);
      if (size < 0 && this.framing.fillUnits) cursor = { at: 0 };
      else if (size < 0 || size > PIPE_BUF) {
        units = this.framing.encode(message)[Symbol.iterator]();
        next = units.next().value as Buffer | undefined;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const group = signal ? newGroup(signal) : (this.#open ??= newGroup());
    group.remaining++;
    if (!signal && !units && !cursor && size <= STAGED_UNIT_BYTES) {
      // A small message: encoded at once behind the others of its group not yet
      // written, so a loop of sends costs one entry per PIPE_BUF, not one per message.
      let tail = this.#queue.length > this.#head ? this.#queue[this.#queue.length - 1]! : undefined;
      if (!(tail?.staged && !tail.started && tail.group === group && tail.size + size <= PIPE_BUF)) {
        const staging = this.#spare.pop() ?? Buffer.allocUnsafeSlow(PIPE_BUF);
        tail = { message: staging, encoded: true, size: 0, units: undefined, next: undefined, cursor: undefined, started: false, group, count: 0, staged: true };
        this.#enqueue(tail);
      }
      this.framing.writeUnit(message, tail.message as Buffer, tail.size);
      tail.size += size;
      tail.count++;
      return group.promise;
    }
    const entry: Pending = { message, encoded: false, size, units, next, cursor, started: false, group, count: 1, staged: false };
    if (signal) {
      group.onAbort = () => {
        // Not yet started: it is never sent. Started: it still goes out whole (never cut).
        if (!entry.started) {
          const at = this.#queue.indexOf(entry, this.#head);
          if (at !== -1) this.#queue.splice(at, 1);
        }
        this.#settle(group, signal.reason);
        this.#pump();
      };
      signal.addEventListener('abort', group.onAbort, { once: true });
    }
    this.#enqueue(entry);
    return group.promise;
  }

  sendUnits(units: Uint8Array): Promise<void> {
    const refused = this.#refusal();
    if (refused) return refused;
    if (this.framing.fillUnits || units.length === 0 || units.length > PIPE_BUF) {
      return Promise.reject(new InvalidArgumentError(`sendUnits takes 1 to ${PIPE_BUF} bytes of whole units, and not for the ${this.framing.name} format`));
    }
    const group = (this.#open ??= newGroup());
    group.remaining++;
    this.#enqueue({ message: units, encoded: true, size: units.length, units: undefined, next: undefined, cursor: undefined, started: false, group, count: 1, staged: false });
    return group.promise;
  }

  /** Why a send cannot be taken now (closed, or failed for good), as its rejected promise. */
  #refusal(): Promise<void> | undefined {
    if (this.#closing) return Promise.reject(new ClosedError(`the sender for ${this.#end.path} is closed`));
    if (this.#error) return Promise.reject(this.#error);
    return undefined;
  }

  #enqueue(entry: Pending): void {
    this.#queue.push(entry);
    // Let a loop of send() calls queue up before the first write, so it is batched too.
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#pump();
      });
    }
  }

  #settle(group: Group, err?: unknown): void {
    if (group.settled) return;
    group.settled = true;
    if (group.onAbort) group.signal!.removeEventListener('abort', group.onAbort);
    if (err === undefined) group.resolve();
    else group.reject(err);
  }

  #take(entry: Pending): Buffer {
    const unit = entry.next!;
    entry.started = true;
    // A large unit goes out in pieces, all under the exclusive lock it holds (see PIECE_WRITE_BYTES).
    if (unit.length > PIECE_WRITE_BYTES) {
      entry.next = unit.subarray(PIECE_WRITE_BYTES);
      return unit.subarray(0, PIECE_WRITE_BYTES);
    }
    entry.next = entry.units!.next().value as Buffer | undefined;
    return unit;
  }

  /**
   * Writes what is queued. Each write() is whole units of at most PIPE_BUF bytes
   * (all or nothing on a pipe, so several writers never tear each other), or one
   * unit over PIPE_BUF, in pieces of PIECE_WRITE_BYTES, alone under the exclusive
   * writer lock. Writes are made directly (non-blocking, so they never wait) while
   * the pipe has room; when it is full, libuv finishes the write when epoll
   * reports room, and the pump goes on from its callback. At most
   * PUMP_BUDGET_BYTES per turn of the event loop.
   */
  #pump(): void {
    if (this.#writing || this.#error || this.#reconnecting) return;
    let budget = PUMP_BUDGET_BYTES;
    for (;;) {
      let w = this.#pending;
      if (!w) {
        if (this.#head === this.#queue.length) {
          this.#unlock();
          this.#drained?.();
          return;
        }
        if (budget <= 0) {
          this.#unlock(); // a writer waiting for the exclusive lock gets its turn
          this.#writing = true;
          setImmediate(() => {
            this.#writing = false;
            this.#pump();
          });
          return;
        }
        w = this.#pending = this.#prepare();
      }
      if (w.lock && this.#lockHeld !== w.lock) {
        // flock converts a lock in place by dropping it first: say so explicitly.
        this.#unlock();
        const mode = w.lock;
        if (!tryLock(this.#end.fd, mode)) {
          // Another npipe writer is in the middle of a large message: wait for it.
          this.#writing = true;
          this.#watchWrites();
          lock(this.#end.fd, mode, this.#closeController.signal).then(
            () => {
              if (this.#error) {
                // Failed (or closed) meanwhile: the lock is not ours to keep.
                this.#lockHeld = mode;
                this.#unlock();
                return;
              }
              this.#lockHeld = mode;
              this.#writing = false;
              this.#progressed = true;
              this.#pump();
            },
            (err) => {
              this.#writing = false;
              this.#fail(err);
            },
          );
          return;
        }
        this.#lockHeld = mode;
      }
      let n: number;
      try {
        n = writeNow(this.#end.fd, w.data, w.written);
      } catch (err) {
        this.#writeFailed(err);
        return;
      }
      if (n > 0) {
        w.written += n;
        this.#progressed = true;
      }
      budget -= n;
      if (w.written < w.data.length) {
        // The pipe is full: libuv writes the rest once epoll says there is room.
        const rest = w.written === 0 ? w.data : w.data.subarray(w.written);
        const current = w;
        this.#writing = true;
        this.#socket.write(rest, (err) => {
          // Failed or stopped meanwhile (close with an aborted signal, timeout): the
          // queue this write belonged to is gone (issue 15 #4: a TypeError here).
          if (this.#pending !== current) return;
          this.#writing = false;
          if (err) {
            this.#writeFailed(err);
            return;
          }
          this.#progressed = true;
          this.#finish(current);
          this.#pump();
        });
        this.#watchWrites();
        return;
      }
      this.#finish(w);
    }
  }

  /**
   * The next write: whole small units (and packets) batched into PIPE_BUF bytes,
   * or the next unit of a large message, which holds the exclusive lock until its
   * last unit is out.
   */
  #prepare(): PendingWrite {
    this.#open = undefined; // messages sent from now on settle with a later write
    const head = this.#queue[this.#head]!;
    if (head.units) {
      const data = this.#take(head);
      const done = head.next === undefined;
      const lock = this.framing.writersLock ? 'exclusive' : undefined;
      return { data, written: 0, lock, holdLock: !done, completed: done ? 1 : 0 };
    }
    const batch = this.#batch;
    let bytes = 0;
    let completed = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (entry.cursor) {
        const n = this.framing.fillUnits!(entry.message, entry.cursor, batch, bytes, PIPE_BUF - bytes);
        if (n > 0) entry.started = true;
        bytes += n;
        if (entry.cursor.at < entry.message.length) break;
        completed++;
        continue;
      }
      if (entry.units || bytes + entry.size > PIPE_BUF) break;
      if (entry.encoded) batch.set(entry.staged ? entry.message.subarray(0, entry.size) : entry.message, bytes);
      else this.framing.writeUnit(entry.message, batch, bytes);
      bytes += entry.size;
      entry.started = true;
      completed++;
    }
    return { data: batch.subarray(0, bytes), written: 0, lock: this.framing.writersLock ? 'shared' : undefined, holdLock: false, completed };
  }

  #finish(w: PendingWrite): void {
    this.#pending = undefined;
    // A large message's last unit is out: let other writers in. A shared lock stays for the next batch.
    if (!w.holdLock && w.lock === 'exclusive') this.#unlock();
    this.#complete(w.completed);
  }

  #unlock(): void {
    if (this.#lockHeld === undefined) return;
    this.#lockHeld = undefined;
    try {
      unlock(this.#end.fd);
    } catch {
      // The fd is still ours; closing it releases the lock anyway.
    }
  }

  /** The first `count` entries are in the pipe: settle the groups they finish. */
  #complete(count: number): void {
    const end = this.#head + count;
    for (let i = this.#head; i < end; i++) {
      const entry = this.#queue[i]!;
      const group = entry.group;
      if ((group.remaining -= entry.count) === 0) this.#settle(group);
      // Its bytes are in the pipe: the buffer takes the next run of small messages.
      if (entry.staged && this.#spare.length < SPARE_STAGING_BUFFERS) this.#spare.push(entry.message as Buffer);
    }
    this.#head = end;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * While a write waits (for room in the pipe, for the writers' lock), checks that
   * it makes progress: with `timeout`, no byte taken by the pipe for that long
   * fails the sender with ERR_NPIPE_TIMEOUT (issue 15 #14: a reader that opened the
   * FIFO and never read held a sender for ever).
   */
  #watchWrites(): void {
    const timeout = this.#writeTimeout;
    if (timeout === undefined || this.#watch) return;
    this.#progressed = false;
    this.#lastProgress = Date.now();
    this.#lastQueued = -1;
    const every = Math.max(5, Math.min(1000, timeout / 4));
    const tick = () => {
      this.#watch = undefined;
      if (this.#error || !this.#writing) return; // nothing waits now; the next wait starts a new watch
      const queued = (this.#socket as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? -1;
      const now = Date.now();
      if (this.#progressed || queued !== this.#lastQueued || this.#reconnecting) {
        this.#progressed = false;
        this.#lastQueued = queued;
        this.#lastProgress = now;
      } else if (now - this.#lastProgress >= timeout) {
        this.#fail(
          new TimeoutError(
            `${this.#end.path} took no byte for ${timeout} ms: its reader is not reading (or another writer holds the ` +
              'writers\' lock); check the reader, or wait longer (timeout)',
          ),
        );
        return;
      }
      this.#watch = setTimeout(tick, every);
      this.#watch.unref();
    };
    this.#watch = setTimeout(tick, every);
    this.#watch.unref();
  }

  #writeFailed(err: unknown): void {
    this.#pending = undefined;
    this.#unlock();
    if (!isErrno(err, 'EPIPE') || !this.#options.waitForReader || this.#closeController.signal.aborted) {
      this.#fail(err);
      return;
    }
    // The reader went away. The failed write put nothing in the pipe (at most
    // PIPE_BUF bytes: all or nothing); messages it cut start again from their first
    // unit: the next reader drops the cut copy (frames) and gets them whole.
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if (!entry.started) break;
      entry.started = false;
      if (entry.cursor) entry.cursor.at = 0;
      if (entry.units) {
        entry.units = this.framing.encode(entry.message)[Symbol.iterator]();
        entry.next = entry.units.next().value as Buffer | undefined;
      }
    }
    this.#reconnecting = true;
    const old = this.#end;
    openWriterEnd(old.path, {
      ...this.#options,
      signal: this.#closeController.signal,
    }).then(
      (end) => {
        // The new end is open before the old one closes, so the pipe keeps any unread bytes.
        this.#attach(end);
        old.close();
        this.reconnects++;
        this.#reconnecting = false;
        this.#pump();
      },
      (cause) => {
        this.#reconnecting = false;
        this.#fail(cause);
      },
    );
  }

  #fail(err: unknown): void {
    if (this.#error) return;
    this.#error = isErrno(err, 'EPIPE')
      ? new NoReaderError(
          `the reader of ${this.#end.path} went away (EPIPE); start a reader and open a new sender, ` +
            'or pass waitForReader (--wait) to wait for the next one',
          { cause: err },
        )
      : err instanceof NpipeError
        ? err
        : fromSystemError(err, this.#end.path, 'writing to');
    for (let i = this.#head; i < this.#queue.length; i++) this.#settle(this.#queue[i]!.group, this.#error);
    this.#queue = [];
    this.#head = 0;
    this.#open = undefined;
    this.#pending = undefined;
    clearTimeout(this.#watch);
    this.#watch = undefined;
    // Failed for good: a wait for the writers' lock or for a new reader ends too.
    this.#closeController.abort();
    this.#drained?.();
  }

  /**
   * close() with its signal aborted while messages are queued: those not started
   * are dropped (their sends reject with ERR_NPIPE_CLOSED). A message of `lines`,
   * `length` or `fixed:N` already partly in the pipe is finished first: cut, it
   * would put every reader of the FIFO out of step (issue 15 #4). A `frames`
   * message is abandoned (its reader drops the partial message) and `raw` is a
   * byte stream: both stop at once. Finishing is bounded by `timeout` (no
   * progress) and by the reader leaving (EPIPE).
   */
  #stop(): void {
    const closed = new ClosedError(`the sender for ${this.#end.path} was closed before this message was sent`);
    const head = this.#queue[this.#head];
    const finish = this.framing.writersLock && head?.started === true && head.units !== undefined && !this.#error;
    if (!finish) {
      this.#closeController.abort();
      this.#fail(closed);
      return;
    }
    // Every group with a message dropped here rejects now, the head's too (its
    // message still goes out whole): a group left waiting would never settle.
    for (let i = this.#head + 1; i < this.#queue.length; i++) this.#settle(this.#queue[i]!.group, closed);
    this.#queue.length = this.#head + 1;
    this.#open = undefined;
  }

  /**
   * Waits for every queued frame to be written, then closes the FIFO end (this
   * process's descriptors only; the FIFO stays on disk). With `signal` aborted, the
   * queued frames not yet started are dropped (their sends reject with
   * ERR_NPIPE_CLOSED); a `lines`/`length`/`fixed:N` message already partly written
   * is finished first (never cut: that would put the reader out of step), bounded
   * by `timeout`; a `frames` or `raw` write stops at once (a frames reader drops
   * the partial message).
   */
  close(options: CallOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    if (this.#head < this.#queue.length && !this.#error) {
      await new Promise<void>((resolve) => {
        const onAbort = () => this.#stop();
        this.#drained = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.#closeController.abort();
    this.#end.close();
  }
}

export async function openFifoFrameReceiver(
  path: string,
  framing: Framing,
  options: FifoReceiverOptions = {},
): Promise<FifoFrameReceiver> {
  checkTimeout(options.partialTimeout, 'partialTimeout'); // before the FIFO is opened
  return new FifoFrameReceiver(await openReaderEnd(path, options), framing, options);
}

/** Opens the read end with the pipe capacity asked for, or the receivers' default (best effort). */
export async function openReaderEnd(path: string, options: FifoReceiverOptions): Promise<FifoEnd> {
  const end = await openFifoReader(path, options);
  if (options.pipeSize !== undefined) withPipeSize(end, options.pipeSize);
  else {
    // A larger pipe means fewer wake-ups on both sides. Best effort: the kernel may
    // refuse (a user over its pipe-user-pages limit), and its default still works.
    orElse(() => end.setPipeSize(DEFAULT_RECEIVER_PIPE_SIZE), 0);
  }
  return end;
}

/**
 * `f()`, or `fallback` if it throws: for the pipe-size and FIONREAD calls, which
 * are Linux-only or may be refused, and whose absence only costs speed.
 */
export function orElse<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/**
 * Whether process `pid` is alive and still has the FIFO `end` open for writing.
 * A pid can be reused by an unrelated process; on Linux /proc tells whether it
 * holds our FIFO, and how. Descriptors opened read-only do not count, nor (for
 * our own pid) the receiver's own keep-open writer: a first packet claiming the
 * reader's pid, or a pid that only reads the FIFO, cannot be a writer's (issue 15
 * #9: such a claim pinned the partial-message memory for ever). Where that cannot
 * be seen (another user's process), it counts as alive; `partialTimeout` bounds it.
 */
function writerAlive(pid: number, end: FifoEnd, ownWriters: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return false;
  }
  if (process.platform !== 'linux') return true;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    return !isErrno(err, 'ENOENT');
  }
  let writers = 0;
  for (const fd of fds) {
    let st;
    try {
      st = statSync(`/proc/${pid}/fd/${fd}`, { throwIfNoEntry: false });
    } catch {
      // Listed but not examinable (EACCES: e.g. pid 1 in a container, for root): the
      // claim can be neither proved nor refuted, as when the list is refused above;
      // partialTimeout bounds what it can hold (issue 15 #9; it crashed the reader).
      return true;
    }
    if (st && st.ino === end.ino && st.dev === end.dev && openForWriting(pid, fd)) writers++;
  }
  // Our own process: its keep-open descriptor (ownWriters counts it out) is no writer's.
  return pid === process.pid ? writers > ownWriters : writers > 0;
}

/** Whether descriptor `fd` of `pid` was opened for writing (O_WRONLY or O_RDWR); true when that cannot be read. */
function openForWriting(pid: number, fd: string): boolean {
  let info: string;
  try {
    info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
  } catch {
    return true;
  }
  const flags = /^flags:\s*([0-7]+)/m.exec(info);
  return flags === null || (parseInt(flags[1]!, 8) & 3) !== 0;
}

interface Waiter {
  /** A frame (receive), or its length (receiveInto); undefined at the end. */
  resolve(value: Buffer | number | undefined): void;
  reject(err: unknown): void;
  cleanup(): void;
  /** receiveInto's buffer. */
  into: Uint8Array | undefined;
}

/** The part of a net.Socket's handle that sets where the next read goes (see FifoFrameReceiver.#release). */
interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

export class FifoFrameReceiver implements FrameReceiver {
  readonly end: FifoEnd;
  readonly framing: Framing;
  #socket: Socket;
  #decoder: FrameDecoder;
  #queue: Buffer[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** No more frames will come from the pipe (end of file, error, or close). */
  #ended = false;
  #error: unknown;
  #waiter: Waiter | undefined;
  /** Reading stopped for backpressure (our own flag: cheaper per message than socket.isPaused()). */
  #paused = false;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;
  /** Messages dropped rather than delivered torn (frames format), and their bytes. */
  readonly dropped = { messages: 0, bytes: 0 };
  #emit: (frame: Buffer) => void;
  /** Points the socket's next read away from a receiveInto() buffer; undefined where that cannot be done, and then none is read into. */
  #retarget: (() => void) | undefined;

  constructor(end: FifoEnd, framing: Framing, options: FifoReceiverOptions = {}) {
    this.end = end;
    this.framing = framing;
    const onDrop = options.onDrop;
    const partialTimeout = checkTimeout(options.partialTimeout, 'partialTimeout') ?? DEFAULT_PARTIAL_TIMEOUT_MS;
    this.#decoder = framing.createDecoder({
      partialTimeout,
      onDrop: (info) => {
        this.dropped.messages++;
        this.dropped.bytes += info.bytes;
        onDrop?.(info);
      },
      // A message bound for a waiting receiveInto() (the next one: nothing is
      // queued) is assembled in that call's buffer, and read into it if large.
      borrow: (size) => {
        const into = this.#waiter?.into;
        if (!into || !this.#retarget || this.#head < this.#queue.length || size > into.length) return undefined;
        return Buffer.from(into.buffer, into.byteOffset, size);
      },
    });
    if (this.#decoder.sweep) {
      const decoder = this.#decoder;
      const backlog = () => orElse(() => end.bytesInPipe(), 0);
      // On Linux the receiver's keep-open descriptor is a writer of this FIFO in this process (see writerAlive).
      const ownWriters = options.keepOpen === false || process.platform !== 'linux' ? 0 : 1;
      let last = Date.now();
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        // Time spent paused (nobody taking messages) does not count against a writer's message.
        const elapsed = this.#paused ? 0 : now - last;
        last = now;
        decoder.sweep!((pid) => writerAlive(pid, end, ownWriters), backlog, elapsed);
      }, Math.min(SWEEP_INTERVAL_MS, Math.max(10, partialTimeout / 4)));
      this.#sweeper.unref();
    }
    // Every read lands in one reused buffer. For `frames` it is at least as large as
    // the pipe: a read then takes all there is, which ends where a write ended, so a
    // reader that stops (or is killed) never leaves half a packet for the next reader.
    // The other formats have no such guarantee to keep and read in pieces of at most
    // 256 KiB, which lets a writer refill the pipe while the reader works (bulk).
    const wholePipe = framing.name === 'frames';
    // Off Linux the pipe size cannot be read: the default 64 KiB.
    const pipeSize = Math.max(READ_BUFFER_BYTES, orElse(() => end.getPipeSize(), 0));
    let readBuffer = allocAligned(wholePipe ? pipeSize : Math.min(pipeSize, PIECE_READ_BYTES));
    // While messages come out as views (small messages), each read is first copied
    // into a chunk of its own, exactly its size: one copy per read instead of one per
    // message, and the views keep only that chunk alive. While they do not (large
    // messages, assembled in buffers of their own), reads are decoded in place.
    let copyReads = false;
    /** The buffer the current read goes into when it is not readBuffer (see onread.buffer). */
    let direct: Buffer | undefined;
    let views = false;
    /** Decoding readBuffer itself (not a copy of it): a view into it must be copied out. */
    let inPlace = false;
    this.#emit = (frame: Buffer) => {
      let owned = frame;
      if (inPlace) {
        if (frame.buffer === readBuffer.buffer) {
          owned = Buffer.from(frame);
          views = true;
        }
      } else if (frame.length < LARGE_MESSAGE) views = true;
      this.#queue.push(owned);
      this.#queuedBytes += owned.length;
    };
    /** Where the next read goes: inside a large message, the rest of that message's own buffer, in pieces too. */
    const nextBuffer = () => {
      direct = this.#decoder.target?.();
      if (direct && direct.length > PIECE_READ_BYTES) direct = direct.subarray(0, PIECE_READ_BYTES);
      return direct ?? readBuffer;
    };
    this.#socket = end.socket({
      onread: {
        // Called after each read for the buffer of the next one.
        buffer: nextBuffer,
        callback: (bytes) => {
          if (direct) this.#decode(undefined, bytes);
          else {
            const read = readBuffer.subarray(0, bytes);
            views = false;
            if (!copyReads) {
              inPlace = true;
              this.#decode(read);
              inPlace = false;
            } else {
              // In pieces of at most 64 KiB: small enough for malloc's heap, not mmap,
              // so the memory of pieces already collected is reused at once. Each
              // piece starts on a 64-byte boundary, as readBuffer does (see allocAligned).
              for (let at = 0; at < bytes; at += COPY_PIECE) {
                const piece = allocAligned(Math.min(COPY_PIECE, bytes - at));
                piece.set(read.subarray(at, at + piece.length));
                this.#decode(piece);
              }
            }
            copyReads = views;
            if (wholePipe && bytes === readBuffer.length) {
              // A full buffer: someone may have made the pipe larger. Keep up with it.
              const size = orElse(() => end.getPipeSize(), 0);
              if (size > readBuffer.length) readBuffer = allocAligned(size);
            }
          }
          // A waiting receive() takes its message first: a large one then never stops reading.
          this.#wake();
          // Stop reading until receive() makes room (see #shift). pause() rather than
          // returning false: only pause() is undone by resume() (net.Socket with onread).
          if (this.#queuedBytes >= RECEIVE_HIGH_WATER_BYTES && !this.#ended) {
            this.#paused = true;
            this.#socket.pause();
          }
          return true;
        },
      },
    });
    // The next read's buffer is set after each read (onread.buffer above), and
    // otherwise only through the handle. Without that, no receiveInto() buffer is lent.
    const handle = (this.#socket as unknown as { _handle?: Partial<UserBufferHandle> })._handle;
    if (typeof handle?.useUserBuffer === 'function') {
      this.#retarget = () => handle.useUserBuffer!(nextBuffer());
    }
    this.#socket.on('end', () => {
      this.#finish();
      this.#wake();
    });
    this.#socket.on('error', (err) => {
      this.#error ??= fromSystemError(err, end.path, 'reading from');
      this.#finish();
      this.#wake();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes decoded but not yet received, and bytes of a message still incomplete. */
  get bufferedBytes(): number {
    return this.#queuedBytes + this.#decoder.pendingBytes;
  }

  /** Decodes `chunk`, or (no chunk) the `filled` bytes read into the decoder's own target(). */
  #decode(chunk: Buffer | undefined, filled = 0): void {
    if (this.#ended) return;
    try {
      if (chunk) this.#decoder.push(chunk, this.#emit);
      else this.#decoder.filled!(filled, this.#emit);
    } catch (err) {
      // The stream no longer follows the format: stop, deliver what came before, then the error.
      this.#error ??= err;
      this.#finish();
    }
  }

  #finish(): void {
    if (this.#ended) return;
    if (!this.#error) {
      try {
        this.#decoder.end(this.#emit);
      } catch (err) {
        this.#error = err;
      }
    }
    this.#ended = true;
    clearInterval(this.#sweeper);
    this.end.close();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#head < this.#queue.length) {
      this.#waiter = undefined;
      waiter.cleanup();
      if (waiter.into) this.#settleInto(waiter, waiter.into);
      else waiter.resolve(this.#shift());
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter.cleanup();
      this.#settleEnd(waiter);
    }
  }

  #settleEnd(waiter: Pick<Waiter, 'resolve' | 'reject'>): void {
    if (this.#error) {
      const err = this.#error;
      this.#error = undefined; // reported once; then the stream has ended
      waiter.reject(err);
    } else waiter.resolve(undefined);
  }

  #shift(): Buffer {
    const frame = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as Buffer;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#queuedBytes -= frame.length;
    if (this.#paused && this.#queuedBytes < RECEIVE_HIGH_WATER_BYTES / 2 && !this.#ended) {
      this.#paused = false;
      this.#socket.resume();
    }
    return frame;
  }

  /**
   * Settles a receiveInto() with the queue's first frame. `raw` has no messages to
   * keep whole: what does not fit stays first in the queue.
   */
  #settleInto(waiter: Pick<Waiter, 'resolve' | 'reject'>, into: Uint8Array): void {
    const frame = this.#queue[this.#head]!;
    if (frame.length > into.length && this.framing.name === 'raw') {
      into.set(frame.subarray(0, into.length));
      this.#queue[this.#head] = frame.subarray(into.length);
      this.#queuedBytes -= into.length;
      waiter.resolve(into.length);
      return;
    }
    this.#shift();
    try {
      waiter.resolve(copyInto(frame, into));
    } catch (err) {
      waiter.reject(err);
    }
  }

  /**
   * A receiveInto() ended before its message was whole: its buffer is the caller's
   * again. The message goes on in the decoder's own memory, and the socket's next
   * read, if it was bound for that buffer, goes there too.
   */
  #release(): void {
    if (this.#decoder.detach?.()) this.#retarget!();
  }

  /** The next frame if one is already here, else undefined (never waits; see receive()). */
  tryReceive(): Buffer | undefined {
    return this.#head < this.#queue.length ? this.#shift() : undefined;
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    return this.#wait(options.signal, undefined) as Promise<Buffer | undefined>;
  }

  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    const bad = badTarget(target);
    if (bad) return Promise.reject(bad);
    return this.#wait(options.signal, target) as Promise<number | undefined>;
  }

  #wait(signal: AbortSignal | undefined, into: Uint8Array | undefined): Promise<Buffer | number | undefined> {
    if (this.#waiter) {
      return Promise.reject(new BusyError('another receive() is already waiting on this receiver; only one may be pending'));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#head < this.#queue.length) {
      if (!into) return Promise.resolve(this.#shift());
      return new Promise((resolve, reject) => this.#settleInto({ resolve, reject }, into));
    }
    if (this.#ended) {
      return new Promise((resolve, reject) => this.#settleEnd({ resolve, reject }));
    }
    return new Promise<Buffer | number | undefined>((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        if (into) this.#release();
        reject(signal!.reason);
      };
      this.#waiter = {
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
        into,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Stops reading and closes this process's descriptors of the FIFO. What was
   * already read from the pipe is still handed out by `receive`; bytes still in
   * the pipe stay there for the next reader.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#ended) {
      // Reads are handed to the decoder as they happen (onread): nothing read is left behind in the socket.
      this.#ended = true;
      clearInterval(this.#sweeper);
      this.end.close();
    }
    this.#wake();
  }
}
