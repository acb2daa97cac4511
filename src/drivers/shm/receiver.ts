/**
 * The shared-memory receiver: it owns shm://<name> (an flock on the name's owner
 * file: one receiver per name), reads announcements and doorbells on the name's
 * control FIFO, and maps each sender's ring as it is announced (then unlinks its
 * files: a running lane leaves nothing to clean up).
 *
 * Receiving takes the next whole message from the rings, in turn (one message per
 * ring per turn, so no sender starves the others). With nothing there, it spins
 * for `busyPoll` µs if asked, then goes to sleep with the usual protocol against a
 * lost wake-up: set RECEIVER_SLEEPING in every ring, look at every ring once more,
 * and only then wait for a doorbell byte on the control FIFO, which a sender
 * writes after publishing if it finds the flag set (docs/SHM.md, "Waking").
 *
 * A ring whose sender is gone (its doorbell FIFO has no reader) or closed is let
 * go once empty: a message it left in pieces is dropped and counted
 * (`writer-died`). A ring that breaks the format is let go at once and counted
 * (`corrupt`); the other senders go on.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BadFrameError, BusyError, UnsafeFifoError } from '../../errors.js';
import type { DropInfo } from '../../framing/index.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import { abortableWait } from '../../util/abort.js';
import { checkBusyPoll } from '../../util/busy-poll.js';
import { mkfifoExactSync } from '../../fifo/mkfifo.js';
import { openFifoReader, type FifoEnd } from '../../fifo/open.js';
import { readerGone } from '../../fifo/poll.js';
import { tryLock } from '../../fifo/lock.js';
import { badTarget, copyInto } from '../../transport/into.js';
import type { CallOptions, FrameReceiver } from '../../transport/types.js';
import { euid } from '../../sys/euid.js';
import { atExit, removeQuietly } from '../../util/at-exit.js';
import { ensureNameFolder, reclaimNames, reclaimSegments, removeReceiverFiles } from './folder.js';
import { DROPPED, I_ATTACHED, I_CLOSED, REFUSED } from './layout.js';
import { RingReader } from './ring-reader.js';
import { attachSegment, type Mapping } from './segment.js';
import { BELL } from './sender.js';

const { O_CREAT, O_RDWR, O_WRONLY, O_NONBLOCK, O_NOFOLLOW } = constants;

/** The most senders one receiver maps at once; an announcement past it is refused (and reported). */
export const MAX_SENDERS = 1024;
/** How often the receiver looks whether its senders are still there. */
const LIVENESS_MS = 500;
const ANNOUNCED = /^(\d{1,10})-[0-9a-f]{16}$/;
const PLUS = 0x2b;
const NEWLINE = 0x0a;

export interface ShmReceiverOptions {
  maxMessageSize: number;
  /** Bytes held for messages arriving in pieces, all senders together (default max(4 x maxMessageSize, 256 MiB)). */
  maxPartialBytes?: number;
  /** Microseconds to spin (the event loop turning) before sleeping on empty rings. */
  busyPoll?: number;
  /** A byte stream (raw): receiveInto() fills its buffer and keeps the rest. */
  splitInto: boolean;
  onDrop?: (info: DropInfo) => void;
  signal?: AbortSignal;
}

interface Ring {
  reader: RingReader;
  mapping: Mapping;
  /** The write end of the sender's doorbell FIFO; undefined once the sender is known to be gone. */
  bell: number | undefined;
  base: string;
}

interface Waiter {
  target: Uint8Array | undefined;
  resolve(frame: Buffer | undefined): void;
  reject(err: unknown): void;
}

/**
 * Opens the receiver of shm://`name`: makes the name's folder, takes its owner
 * lock, makes its control FIFO. Never waits for a sender.
 * @throws ERR_NPIPE_BUSY (another receiver holds the name), ERR_NPIPE_UNSAFE, ERR_NPIPE_INVALID_ARG,
 *   ERR_NPIPE_UNSUPPORTED (no /dev/shm).
 */
export async function openShmFrameReceiver(name: string, options: ShmReceiverOptions): Promise<ShmFrameReceiver> {
  const busyPoll = checkBusyPoll(options.busyPoll);
  if (options.signal?.aborted) throw options.signal.reason;
  const dir = ensureNameFolder(name);
  reclaimNames(name);
  const ownerPath = join(dir, 'owner');
  let owner: number;
  try {
    owner = openSync(ownerPath, O_CREAT | O_RDWR | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw fromSystemError(err, ownerPath, 'opening');
  }
  let control: FifoEnd | undefined;
  const controlPath = join(dir, 'control');
  let locked = false;
  try {
    const st = fstatSync(owner);
    if (!st.isFile() || st.uid !== euid() || (st.mode & 0o077) !== 0) {
      throw new UnsafeFifoError(`${ownerPath} is not a file of yours closed to others; remove it (rm ${ownerPath})`);
    }
    if (!tryLock(owner, 'exclusive')) {
      const pid = readFileSync(ownerPath, 'utf8').trim();
      throw new BusyError(`shm://${name} has a receiver already (pid ${pid || 'unknown'}); a name has one receiver: stop that one, or use another name`);
    }
    locked = true;
    ftruncateSync(owner, 0);
    writeSync(owner, `${process.pid}\n`, 0);
    reclaimSegments(dir);
    // A control FIFO of our own: senders still holding an earlier receiver's (it died)
    // find no reader on theirs, and fail rather than talk to nobody.
    removeQuietly(controlPath);
    mkfifoExactSync(controlPath, 0o600);
    control = await openFifoReader(controlPath, { create: false, keepOpen: true });
  } catch (err) {
    control?.close();
    if (locked) removeReceiverFiles(dir); // the name was ours: leave nothing of it
    closeSync(owner);
    // An OS error (ENOSPC writing the pid in a full tmpfs) as an npipe error, with its code as the cause's.
    throw fromSystemError(err, ownerPath, 'opening the receiver with');
  }
  return new ShmFrameReceiver(dir, owner, control, busyPoll, options);
}

export class ShmFrameReceiver implements FrameReceiver {
  readonly #dir: string;
  readonly #owner: number;
  readonly #control: FifoEnd;
  readonly #busyPoll: number;
  readonly #splitInto: boolean;
  readonly #onDrop: ((info: DropInfo) => void) | undefined;
  readonly #maxPartial: number;
  #partialBytes = 0;
  #rings: Ring[] = [];
  readonly #bases = new Set<string>();
  #turn = 0;
  #waiter: Waiter | undefined;
  /** Messages taken from rings that were let go (close, a bad ring): handed out first. */
  #leftovers: Buffer[] = [];
  /** What receiveInto() left of a raw message longer than its buffer. */
  #rest: Buffer | undefined;
  #asleep = false;
  #closed = false;
  #line: number[] | undefined;
  #liveness: NodeJS.Timeout | undefined;
  readonly #dropped = { messages: 0, bytes: 0 };
  readonly #undoAtExit: () => void;
  /** Messages found by the liveness timer while asleep: a wake-up that was lost (tests assert it stays 0). */
  lostWakeups = 0;

  constructor(dir: string, owner: number, control: FifoEnd, busyPoll: number, options: ShmReceiverOptions) {
    this.#dir = dir;
    this.#owner = owner;
    this.#control = control;
    this.#busyPoll = busyPoll;
    this.#splitInto = options.splitInto;
    this.#onDrop = options.onDrop;
    this.#maxPartial = options.maxPartialBytes ?? Math.max(4 * options.maxMessageSize, 256 * 1024 * 1024);
    this.#limits.maxMessageSize = options.maxMessageSize;
    const socket = control.socket();
    socket.on('data', (chunk: Buffer) => this.#onControl(chunk));
    socket.on('error', () => {});
    this.#undoAtExit = atExit(() => this.#removeFiles());
  }

  readonly #limits = {
    maxMessageSize: 0,
    reserve: (bytes: number) => {
      if (this.#partialBytes + bytes > this.#maxPartial) return false;
      this.#partialBytes += bytes;
      return true;
    },
    release: (bytes: number) => {
      this.#partialBytes -= bytes;
    },
    drop: (info: DropInfo) => this.#report(info),
  };

  get closed(): boolean {
    return this.#closed;
  }

  get dropped() {
    return this.#dropped;
  }

  /** Senders whose rings are mapped now. */
  get senders(): number {
    return this.#rings.length;
  }

  #report(info: DropInfo): void {
    this.#dropped.messages++;
    this.#dropped.bytes += info.bytes;
    this.#onDrop?.(info);
  }

  // --- the control FIFO: `+<base>\n` announces a sender, any other byte is a doorbell.

  #onControl(chunk: Buffer): void {
    if (this.#closed) return;
    if (this.#line !== undefined || chunk.includes(PLUS)) {
      for (const byte of chunk) {
        if (this.#line === undefined) {
          if (byte === PLUS) this.#line = [];
        } else if (byte === NEWLINE) {
          const line = this.#line;
          this.#line = undefined;
          if (line.length <= 40) this.#attach(Buffer.from(line).toString('latin1'));
        } else if (this.#line.length <= 40) {
          this.#line.push(byte); // longer is no announcement: kept short, dropped at its newline
        }
      }
    }
    this.#wakeUp(false);
  }

  #attach(base: string): void {
    const m = ANNOUNCED.exec(base);
    if (!m || this.#bases.has(base)) return;
    const pid = Number(m[1]);
    const ringPath = join(this.#dir, `${base}.ring`);
    const bellPath = join(this.#dir, `${base}.bell`);
    if (this.#rings.length >= MAX_SENDERS) {
      this.#report({ writerId: 0, reason: 'refused', bytes: 0, pid });
      this.#refuse(ringPath, bellPath, pid);
      return;
    }
    const mapping = attachSegment(ringPath, pid);
    if (typeof mapping === 'string') {
      if (mapping.includes('ENOENT')) return; // its sender closed with nothing to read, and removed it
      this.#report({ writerId: 0, reason: 'corrupt', bytes: 0, pid });
      removeQuietly(ringPath);
      removeQuietly(bellPath);
      return;
    }
    let bell: number | undefined;
    try {
      bell = openSync(bellPath, O_WRONLY | O_NONBLOCK | O_NOFOLLOW);
      const st = fstatSync(bell);
      if (!st.isFIFO() || st.uid !== euid()) {
        closeSync(bell);
        bell = undefined;
      }
    } catch {
      bell = undefined; // ENXIO: its sender is gone already; what it published is still read
    }
    Atomics.store(mapping.i32, I_ATTACHED, process.pid);
    removeQuietly(ringPath);
    removeQuietly(bellPath);
    const reader = new RingReader(mapping, pid, this.#limits);
    if (this.#asleep) reader.sleeping(true);
    this.#rings.push({ reader, mapping, bell, base });
    this.#bases.add(base);
    if (!this.#liveness) {
      this.#liveness = setInterval(() => this.#checkSenders(), LIVENESS_MS);
      this.#liveness.unref();
    }
  }

  /**
   * Tells a sender it is refused (REFUSED in its segment, checked as any, and its doorbell
   * rung), so that it fails with ERR_NPIPE_NO_READER rather than fill a ring nobody reads
   * and wait for room forever; its files are removed.
   */
  #refuse(ringPath: string, bellPath: string, pid: number): void {
    let mapping: Mapping | string;
    try {
      mapping = attachSegment(ringPath, pid);
    } catch {
      return; // an OS error mapping it: it is left to its sender's timeout
    }
    if (typeof mapping === 'string') return;
    Atomics.store(mapping.i32, I_ATTACHED, REFUSED);
    mapping.unmap();
    try {
      const bell = openSync(bellPath, O_WRONLY | O_NONBLOCK | O_NOFOLLOW);
      try {
        if (fstatSync(bell).isFIFO()) writeSync(bell, BELL);
      } finally {
        closeSync(bell);
      }
    } catch {
      // its sender is gone, or its doorbell full: it looks at ATTACHED within 250 ms anyway
    }
    removeQuietly(ringPath);
    removeQuietly(bellPath);
  }

  /** Lets a ring go: unmapped, its doorbell closed; a message it left in pieces dropped. */
  #detach(ring: Ring, reason: DropInfo['reason']): void {
    const i = this.#rings.indexOf(ring);
    if (i < 0) return;
    this.#rings.splice(i, 1);
    this.#bases.delete(ring.base);
    this.#leftovers.push(...ring.reader.takeQueue());
    const cut = ring.reader.abandon();
    if (cut > 0 || reason === 'corrupt') this.#report({ writerId: 0, reason, bytes: cut, pid: ring.reader.pid });
    if (reason === 'corrupt') {
      Atomics.store(ring.mapping.i32, I_ATTACHED, DROPPED);
      this.#ringSender(ring);
    }
    ring.mapping.unmap();
    if (ring.bell !== undefined) closeSync(ring.bell);
    if (this.#rings.length === 0 && this.#liveness) {
      clearInterval(this.#liveness);
      this.#liveness = undefined;
    }
  }

  #ringSender(ring: Ring): void {
    if (ring.bell === undefined) return;
    try {
      writeSync(ring.bell, BELL);
    } catch (err) {
      if (!isErrno(err, 'EAGAIN')) {
        closeSync(ring.bell);
        ring.bell = undefined;
      }
    }
  }

  /** Every LIVENESS_MS: rings of senders gone or closed, and empty, are let go; a lost wake-up is caught (and counted). */
  #checkSenders(): void {
    for (const ring of [...this.#rings]) {
      if (ring.bell !== undefined && readerGone(ring.bell)) {
        closeSync(ring.bell);
        ring.bell = undefined;
      }
      this.#letGoIfDone(ring);
    }
    if (this.#asleep && this.#waiter) this.#wakeUp(true);
  }

  /** A ring whose sender is gone or closed, with nothing left in it, is let go. */
  #letGoIfDone(ring: Ring): void {
    if (ring.reader.queued) return;
    let empty: boolean;
    try {
      empty = ring.reader.available() === 0;
    } catch (err) {
      this.#detach(ring, 'corrupt');
      return;
    }
    if (!empty) return;
    if (ring.bell === undefined) this.#detach(ring, 'writer-died');
    else if (Atomics.load(ring.mapping.i32, I_CLOSED) !== 0) this.#detach(ring, 'abandoned');
  }

  // --- taking messages

  /**
   * The next whole message from the rings, in turn; undefined when none has one now.
   * `target` (receiveInto's buffer) is offered to every ring, or, while one ring
   * assembles a message in it, to that ring only.
   */
  #poll(target?: Uint8Array): Buffer | undefined {
    const n = this.#rings.length;
    let borrower = target === undefined ? undefined : this.#rings.find((ring) => ring.reader.borrowing);
    for (let i = 0; i < n; i++) {
      const ring = this.#rings[(this.#turn + i) % n]!;
      let message: Buffer | undefined;
      try {
        message = ring.reader.next(borrower === undefined || borrower === ring ? target : undefined);
        // A message it began in `target` keeps the rings after it in this turn out of there.
        if (borrower === undefined && target !== undefined && ring.reader.borrowing) borrower = ring;
      } catch (err) {
        if (!(err instanceof BadFrameError)) throw err;
        this.#detach(ring, 'corrupt');
        return this.#poll(target);
      }
      if (ring.reader.wantsBell) {
        ring.reader.wantsBell = false;
        this.#ringSender(ring);
      }
      if (message !== undefined) {
        this.#turn = (this.#turn + i + 1) % n;
        return message;
      }
      if (ring.bell === undefined || Atomics.load(ring.mapping.i32, I_CLOSED) !== 0) {
        this.#letGoIfDone(ring);
        if (this.#rings.length !== n) return this.#poll(target);
      }
    }
    return undefined;
  }

  /** A message that needs no waiting: a rest, a leftover, or one in a ring. */
  #ready(target?: Uint8Array): Buffer | undefined {
    const rest = this.#rest;
    if (rest !== undefined) {
      this.#rest = undefined;
      return rest;
    }
    if (this.#leftovers.length > 0) return this.#leftovers.shift();
    if (this.#closed) return undefined;
    return this.#poll(target);
  }

  tryReceive(): Buffer | undefined {
    if (this.#waiter) return undefined;
    return this.#ready();
  }

  receive(options: CallOptions = {}): Promise<Buffer | undefined> {
    return this.#wait(undefined, options);
  }

  receiveInto(target: Uint8Array, options: CallOptions = {}): Promise<number | undefined> {
    const bad = badTarget(target);
    if (bad) return Promise.reject(bad);
    return this.#wait(target, options).then(
      (frame) => {
        // A message still in pieces in `target` moves out before anything is copied into it.
        this.#giveBack();
        return frame === undefined ? undefined : this.#into(frame, target);
      },
      (err: unknown) => {
        this.#giveBack();
        throw err;
      },
    );
  }

  /** receiveInto's buffer is the caller's again: a message being assembled in it moves into the receiver's memory. */
  #giveBack(): void {
    for (const ring of this.#rings) ring.reader.giveBack();
  }

  #into(frame: Buffer, target: Uint8Array): number {
    if (this.#splitInto && frame.length > target.length) {
      target.set(frame.subarray(0, target.length));
      this.#rest = frame.subarray(target.length);
      return target.length;
    }
    return copyInto(frame, target);
  }

  #wait(target: Uint8Array | undefined, options: CallOptions): Promise<Buffer | undefined> {
    if (this.#waiter) return Promise.reject(new BusyError('another receive() is already waiting on this receiver'));
    // An aborted signal rejects at once, before anything is taken (as over a FIFO): a
    // receiveInto() would otherwise begin a message in a buffer its caller takes back now.
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    let frame: Buffer | undefined;
    try {
      frame = this.#ready(target);
    } catch (err) {
      return Promise.reject(err);
    }
    if (frame !== undefined || this.#closed) return Promise.resolve(frame);
    return abortableWait<Buffer | undefined>(
      options.signal,
      () => {
        this.#waiter = undefined;
        // receiveInto's buffer is the caller's again as soon as abort() returns (messaging.ts: "gives
        // it back at once"), not a microtask later: code right after abort() may overwrite it.
        if (target !== undefined) this.#giveBack();
      },
      (settle) => {
        this.#waiter = { target, ...settle };
        this.#park();
      },
    );
  }

  /** Hands `frame` to the waiter, if one is still there. */
  #settle(frame: Buffer | undefined): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve(frame);
  }

  /** Nothing to hand out now: spin for busyPoll µs, then sleep. */
  #park(): void {
    if (this.#busyPoll === 0) return this.#sleep();
    const until = performance.now() + this.#busyPoll / 1000;
    const spin = () => {
      const waiter = this.#waiter;
      if (!waiter || this.#closed) return;
      const frame = this.#poll(waiter.target);
      if (frame !== undefined) this.#settle(frame);
      else if (performance.now() < until) setImmediate(spin);
      else this.#sleep();
    };
    setImmediate(spin);
  }

  /** Says so in every ring, looks once more, then waits for a doorbell (#onControl). */
  #sleep(): void {
    this.#asleep = true;
    for (const ring of this.#rings) ring.reader.sleeping(true);
    const waiter = this.#waiter;
    if (!waiter) return;
    const frame = this.#poll(waiter.target);
    if (frame !== undefined) {
      this.#awake();
      this.#settle(frame);
    } else if (this.#rings.some((ring) => ring.reader.more)) {
      // A ring still holds records that a poll had no budget left for: no doorbell will come
      // for them, so look again on the next turn.
      setImmediate(() => this.#wakeUp(false));
    }
  }

  #awake(): void {
    if (!this.#asleep) return;
    this.#asleep = false;
    for (const ring of this.#rings) ring.reader.sleeping(false);
  }

  /** A doorbell (or the liveness timer, `safetyNet`): look for a message for the waiter. */
  #wakeUp(safetyNet: boolean): void {
    if (!this.#asleep) return;
    const waiter = this.#waiter;
    if (!waiter) return this.#awake();
    let frame: Buffer | undefined;
    try {
      frame = this.#ready(waiter.target);
    } catch (err) {
      this.#waiter = undefined;
      waiter.reject(err);
      return;
    }
    if (frame === undefined) {
      // Still nothing whole (a doorbell may have come for a piece of a long message, and its
      // sender took its flag back when it rang): say so in every ring again, and look again.
      return this.#sleep();
    }
    // The safety net found a message while no doorbell was pending: a wake-up was lost.
    if (safetyNet && this.#control.bytesInPipe() === 0) this.lostWakeups++;
    this.#awake();
    this.#settle(frame);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#control.close();
    for (const ring of [...this.#rings]) this.#detach(ring, 'abandoned');
    if (this.#liveness) clearInterval(this.#liveness);
    this.#undoAtExit();
    this.#removeFiles();
    if (this.#waiter) this.#settle(this.#leftovers.shift());
    return Promise.resolve();
  }

  /** The control FIFO, the owner file and the folder (when empty); then the lock goes with its descriptor. */
  #removeFiles(): void {
    removeReceiverFiles(this.#dir);
    try {
      closeSync(this.#owner);
    } catch {
      // closed already (at exit after close)
    }
  }
}
