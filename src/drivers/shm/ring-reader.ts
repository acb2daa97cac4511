/**
 * The receiver's side of one sender's ring. The mapping is writable by the sender
 * at any moment, so nothing read from it is used before it is copied out and
 * checked: TAIL must lie within a ring's length of this side's own HEAD (kept in
 * JavaScript memory, only ever written to the mapping), a record's header must be
 * one the format allows and fit in what TAIL published, a piece must continue the
 * message in progress. Payload bytes are only ever copied, never parsed. Anything
 * else is a BadFrameError: the receiver drops this sender, and no read ever goes
 * past the ring, waits, or allocates more than the caller's limits.
 *
 * Small records are copied out many at a time (one copy of up to BATCH_BYTES), then
 * parsed from that private copy; a large one is copied once, straight into its
 * destination (a new Buffer, or the caller's receiveInto() buffer).
 */
import { BadFrameError } from '../../errors.js';
import { allocMessage } from '../../sys/aligned.js';
import type { DropInfo } from '../../framing/index.js';
import type { Mapping } from './segment.js';
import {
  I_HEAD,
  I_RECEIVER_SLEEPING,
  I_SENDER_WAITING,
  I_TAIL,
  KIND_FIRST,
  KIND_LAST,
  KIND_MIDDLE,
  KIND_WHOLE,
  RECORD_HEADER,
  recordBytes,
} from './layout.js';

/** Records up to this size are copied out in batches. */
const SMALL_RECORD = 4096;
const BATCH_BYTES = 64 * 1024;

export interface ReaderLimits {
  maxMessageSize: number;
  /** Takes `bytes` for a message in pieces from the receiver's bound for all rings; false: over it. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
  /** A message dropped (too large, over the bound), with why. */
  drop(info: DropInfo): void;
}

const header = new Uint8Array(RECORD_HEADER);
const headerWords = new DataView(header.buffer);
/**
 * Where small records are copied out of a ring to be checked: one buffer for every
 * ring, reused (a new one per batch cost more than the copy). Each message then
 * gets its own Buffer (Node's pool serves small ones).
 */
const staging = Buffer.allocUnsafeSlow(BATCH_BYTES);
const staging32 = new Uint32Array(staging.buffer, staging.byteOffset, BATCH_BYTES / 4);

export class RingReader {
  readonly #m: Mapping;
  readonly #capacity: number;
  readonly #mask: number;
  readonly pid: number;
  readonly #limits: ReaderLimits;
  /** Bytes consumed (mod 2^32): ours; HEAD in the mapping is only written. */
  #head = 0;
  /** Messages copied out of the ring, not yet handed out. */
  #queue: Buffer[] = [];
  #next = 0;
  /**
   * The message arriving in pieces: its buffer (undefined: being skipped), bytes so
   * far, length, and `lent`: the receiveInto() buffer it is assembled in, when one
   * was offered and it fits (else the buffer is the receiver's own, counted against
   * maxPartialBytes). A lent buffer is the caller's again once that call settles:
   * giveBack() then moves what is there into memory of our own.
   */
  #partial: { buffer: Buffer | undefined; got: number; total: number; lent: Uint8Array | undefined } | undefined;

  constructor(mapping: Mapping, pid: number, limits: ReaderLimits) {
    this.#m = mapping;
    this.#capacity = mapping.capacity;
    this.#mask = mapping.capacity - 1;
    this.pid = pid;
    this.#limits = limits;
  }

  /** Bytes published and not yet consumed, checked. @throws BadFrameError */
  available(): number {
    const tail = Atomics.load(this.#m.i32, I_TAIL) >>> 0;
    const avail = (tail - this.#head) >>> 0;
    if (avail > this.#capacity || (avail & 7) !== 0) {
      throw new BadFrameError(`sender ${this.pid} published a position that is not within its ring (${avail} bytes ahead of ours, ring of ${this.#capacity})`);
    }
    return avail;
  }

  /** Whether messages copied out wait here. */
  get queued(): boolean {
    return this.#next < this.#queue.length;
  }

  /** Messages already copied out, to be handed out after the ring is let go. */
  takeQueue(): Buffer[] {
    const rest = this.#queue.slice(this.#next);
    this.#queue = [];
    this.#next = 0;
    return rest;
  }

  /**
   * The next whole message, or undefined when none is complete now. `target`: a
   * receiveInto() buffer; a large message that fits is copied straight into it
   * (the Buffer returned is then a view of it).
   * @throws BadFrameError
   */
  next(target?: Uint8Array): Buffer | undefined {
    this.more = false;
    if (this.#next < this.#queue.length) return this.#shift();
    // Records dropped (too large, over the bound) are skipped here, not handed out: at most a
    // ring's length of them per call, so that a sender streaming them cannot hold the event loop.
    const start = this.#head;
    for (;;) {
      const avail = this.available();
      if (avail === 0) return undefined;
      if (((this.#head - start) >>> 0) >= this.#capacity) {
        this.more = true;
        return undefined;
      }
      this.#peekHeader();
      const length = headerWords.getUint32(0, true);
      const kind = headerWords.getUint32(4, true);
      const total = headerWords.getUint32(8, true);
      this.#check(length, kind, total, headerWords.getUint32(12, true), avail);
      const size = recordBytes(length);
      if (kind === KIND_WHOLE) {
        if (size <= SMALL_RECORD) {
          this.#batch(avail);
          // A batch of records all dropped (too large) yields nothing: go on to what follows them,
          // rather than leave it in the ring with no doorbell to come for it.
          if (this.#next < this.#queue.length) return this.#shift();
          continue;
        }
        if (length > this.#limits.maxMessageSize) {
          this.#consume(size);
          this.#limits.drop({ writerId: 0, reason: 'too-large', bytes: length, pid: this.pid });
          continue;
        }
        const into = target !== undefined && target.length >= length;
        const message = into ? Buffer.from(target.buffer, target.byteOffset, length) : allocMessage(length);
        this.#copyOut(message, this.#head + RECORD_HEADER);
        this.#consume(size);
        return message;
      }
      const done = this.#piece(kind, length, total, target);
      this.#consume(size);
      if (done) return done;
    }
  }

  #shift(): Buffer {
    const message = this.#queue[this.#next]!;
    this.#queue[this.#next++] = undefined as unknown as Buffer;
    if (this.#next === this.#queue.length) {
      this.#queue = [];
      this.#next = 0;
    }
    return message;
  }

  /** Copies the record header at HEAD out of the ring (into `header`). */
  #peekHeader(): void {
    const at = this.#head & this.#mask;
    if (at + RECORD_HEADER <= this.#capacity) {
      const w = at >>> 2;
      const { data32 } = this.#m;
      headerWords.setInt32(0, data32[w]!, true);
      headerWords.setInt32(4, data32[w + 1]!, true);
      headerWords.setInt32(8, data32[w + 2]!, true);
      headerWords.setInt32(12, data32[w + 3]!, true);
    } else {
      this.#copyOut(header, this.#head);
    }
  }

  /** A record header (copied) that the format allows, within `avail` bytes published. */
  #check(length: number, kind: number, total: number, zero: number, avail: number): void {
    // The usual case first. `length` is checked against the ring before recordBytes(),
    // whose 32-bit arithmetic would wrap for a length near 2^32.
    if (kind === KIND_WHOLE && zero === 0 && total === 0 && length <= this.#capacity && recordBytes(length) <= avail && !this.#partial) return;
    const bad = (why: string) => new BadFrameError(`sender ${this.pid} wrote a bad record: ${why}`);
    if (zero !== 0 || kind > KIND_LAST) throw bad(`kind ${kind}, reserved word ${zero}`);
    if (length > this.#capacity || recordBytes(length) > avail) throw bad(`${length} bytes, more than the ${avail} it published`);
    if (kind === KIND_WHOLE || kind === KIND_FIRST) {
      if (this.#partial) throw bad('a new message before the last one ended');
      if (kind === KIND_FIRST && total <= length) throw bad(`a first piece of ${length} bytes of a ${total}-byte message`);
      if (kind === KIND_WHOLE && total !== 0) throw bad(`a whole message with a total of ${total}`);
    } else {
      if (!this.#partial) throw bad('a piece with no message in progress');
      if (total !== 0) throw bad(`a later piece with a total of ${total}`);
      const got = this.#partial.got + length;
      if (kind === KIND_MIDDLE ? got >= this.#partial.total : got !== this.#partial.total) {
        throw bad(`pieces of ${got} bytes for a message of ${this.#partial.total}`);
      }
    }
  }

  /**
   * A piece of a long message (checked); the message once its last piece is in.
   * `target`: a receiveInto() buffer; a message that fits is assembled in it, so
   * that it is copied once, not into a buffer of its own and then again (messages
   * over half the ring with receiveInto: 0.33 GB/s before, see docs/TUNING.md).
   */
  #piece(kind: number, length: number, total: number, target: Uint8Array | undefined): Buffer | undefined {
    if (kind === KIND_FIRST) {
      let buffer: Buffer | undefined;
      let lent: Uint8Array | undefined;
      if (total > this.#limits.maxMessageSize) {
        this.#limits.drop({ writerId: 0, reason: 'too-large', bytes: total, pid: this.pid });
      } else if (target !== undefined && target.length >= total) {
        lent = target;
        buffer = Buffer.from(target.buffer, target.byteOffset, total);
      } else if (!this.#limits.reserve(total)) {
        this.#limits.drop({ writerId: 0, reason: 'memory', bytes: total, pid: this.pid });
      } else {
        buffer = allocMessage(total);
      }
      this.#partial = { buffer, got: 0, total, lent };
    } else if (this.#partial!.lent !== undefined && this.#partial!.lent !== target) {
      this.giveBack(); // not the call it was lent by (the receiver gives it back first; this is a safety net)
    }
    const partial = this.#partial!;
    // A lent buffer taken away meanwhile (its ArrayBuffer transferred or shrunk: the view is
    // empty) holds none of the message: giveBack() drops it rather than complete it torn.
    if (partial.lent !== undefined && partial.buffer!.length !== partial.total) this.giveBack();
    if (partial.buffer) this.#copyOut(partial.buffer.subarray(partial.got, partial.got + length), this.#head + RECORD_HEADER);
    partial.got += length;
    if (kind !== KIND_LAST) return undefined;
    this.#partial = undefined;
    if (!partial.buffer) return undefined;
    if (partial.lent === undefined) this.#limits.release(partial.total);
    return partial.buffer;
  }

  /** Whether the message in progress is being assembled in a receiveInto() buffer. */
  get borrowing(): boolean {
    return this.#partial?.lent !== undefined;
  }

  /**
   * The receiveInto() call that lent its buffer settled (or gave up) before the
   * message there was whole: the bytes so far move into memory of our own, within
   * maxPartialBytes (else the message is dropped as over that bound), and the
   * caller's buffer is theirs again.
   */
  giveBack(): void {
    const partial = this.#partial;
    if (partial?.lent === undefined) return;
    const lent = partial.buffer!;
    partial.lent = undefined;
    // (A buffer transferred or shrunk while lent has lost the bytes so far: dropped too.)
    if (lent.length !== partial.total || !this.#limits.reserve(partial.total)) {
      partial.buffer = undefined;
      this.#limits.drop({ writerId: 0, reason: 'memory', bytes: partial.total, pid: this.pid });
      return;
    }
    partial.buffer = allocMessage(partial.total);
    partial.buffer.set(lent.subarray(0, partial.got));
  }

  /** The message in progress is dropped (its sender died, or the receiver closes): returns its bytes so far. */
  abandon(): number {
    const partial = this.#partial;
    if (!partial) return 0;
    this.#partial = undefined;
    if (partial.buffer && partial.lent === undefined) this.#limits.release(partial.total);
    return partial.got;
  }

  /**
   * Copies small whole records out: up to BATCH_BYTES of the ring in one copy, then
   * parsed from the copy (checked as next() checks) until a record that is not
   * small and whole, or not entirely in the copy.
   */
  #batch(avail: number): void {
    const n = Math.min(avail, BATCH_BYTES);
    const chunk = staging;
    this.#copyOut(chunk.subarray(0, n), this.#head);
    let at = 0;
    // Records start 8-byte aligned, so their header words are whole words of the copy
    // (little-endian machines: x64, arm64).
    while (at + RECORD_HEADER <= n) {
      const w = at >>> 2;
      const length = staging32[w]!;
      const kind = staging32[w + 1]!;
      const total = staging32[w + 2]!;
      this.#check(length, kind, total, staging32[w + 3]!, avail - at);
      const size = recordBytes(length);
      if (kind !== KIND_WHOLE || size > SMALL_RECORD || at + size > n) break;
      if (length > this.#limits.maxMessageSize) this.#limits.drop({ writerId: 0, reason: 'too-large', bytes: length, pid: this.pid });
      else {
        const message = Buffer.allocUnsafe(length);
        const from = at + RECORD_HEADER;
        if (length <= 128) for (let i = 0; i < length; i++) message[i] = chunk[from + i]!;
        else chunk.copy(message, 0, from, from + length);
        this.#queue.push(message);
      }
      at += size;
    }
    this.#consume(at);
  }

  /** Copies `target.length` bytes from ring position `from` (mod 2^32, wrapping). */
  #copyOut(target: Uint8Array, from: number): void {
    const { data } = this.#m;
    const at = from & this.#mask;
    const first = this.#capacity - at;
    if (target.length <= first) {
      target.set(data.subarray(at, at + target.length));
    } else {
      target.set(data.subarray(at, this.#capacity));
      target.set(data.subarray(0, target.length - first), first);
    }
  }

  /**
   * Gives `bytes` back to the sender: HEAD stored (after every copy out of them),
   * then, if the sender said it waits for room, true: ring its doorbell.
   */
  #consume(bytes: number): void {
    if (bytes === 0) return;
    this.#head = (this.#head + bytes) >>> 0;
    Atomics.store(this.#m.i32, I_HEAD, this.#head | 0);
    const i32 = this.#m.i32;
    if (Atomics.load(i32, I_SENDER_WAITING) !== 0 && Atomics.exchange(i32, I_SENDER_WAITING, 0) !== 0) this.wantsBell = true;
  }

  /** Set when next() stopped with records still in the ring (its budget was spent): look again soon, do not sleep. */
  more = false;

  /** Set when the sender waits for room and should be woken (the receiver rings, then clears this). */
  wantsBell = false;

  /** Says the receiver is about to sleep (1), or awake (0): RECEIVER_SLEEPING. */
  sleeping(on: boolean): void {
    Atomics.store(this.#m.i32, I_RECEIVER_SLEEPING, on ? 1 : 0);
  }
}
