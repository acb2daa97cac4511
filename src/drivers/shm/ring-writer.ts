/**
 * The sender's side of a ring: records written at the tail, published by one
 * store. The tail this side keeps is its own (in JavaScript memory); HEAD is read
 * from the mapping and checked, since the receiver's word is not taken on trust
 * either.
 *
 * Publishing (docs/SHM.md, "Memory ordering"): every byte of a record is written
 * first, with plain stores (a large record's with streaming stores, which end
 * with a fence: sys/streaming-copy.ts); then Atomics.store(TAIL) makes the
 * records before it visible. A sender killed at any point before that store has published nothing of
 * the record, so no reader ever sees a torn one.
 */
import { NoReaderError } from '../../errors.js';
import { STREAMING_COPY_MIN_BYTES, streamingCopy } from '../../sys/streaming-copy.js';
import type { Mapping } from './segment.js';
import { I_HEAD, I_RECEIVER_SLEEPING, I_SENDER_WAITING, I_TAIL, KIND_FIRST, KIND_LAST, KIND_MIDDLE, KIND_WHOLE, RECORD_HEADER, maxPiece, recordBytes } from './layout.js';

const header = new Uint8Array(RECORD_HEADER);
const headerWords = new DataView(header.buffer);

export class RingWriter {
  readonly #m: Mapping;
  readonly #capacity: number;
  readonly #mask: number;
  readonly maxPiece: number;
  /** Bytes written so far (mod 2^32), published or not. */
  #tail = 0;
  #published = 0;
  /** Bytes known free without reading HEAD again (the receiver only ever frees more). */
  #room: number;

  constructor(mapping: Mapping) {
    this.#m = mapping;
    this.#capacity = mapping.capacity;
    this.#mask = mapping.capacity - 1;
    this.maxPiece = maxPiece(mapping.capacity);
    this.#room = mapping.capacity;
  }

  /** At least `bytes` free? HEAD is read (a line the receiver writes) only when what is known is not enough. */
  #fits(bytes: number): boolean {
    return this.#room >= bytes || this.free() >= bytes;
  }

  /**
   * Bytes free in the ring now.
   * @throws ERR_NPIPE_NO_READER when HEAD is not between the published records' start
   *   and the tail (the receiver is broken, or not the receiver).
   */
  free(): number {
    const head = Atomics.load(this.#m.i32, I_HEAD) >>> 0;
    const used = (this.#tail - head) >>> 0;
    if (used > this.#capacity) throw new NoReaderError('the receiver wrote a position outside the ring; it cannot be trusted, so this sender stopped');
    this.#room = this.#capacity - used;
    return this.#room;
  }

  /** Whether nothing published waits to be read. */
  drained(): boolean {
    return this.free() === this.#capacity;
  }

  /**
   * Writes as much of `message` (from `cursor.at`) as fits now, as one whole record
   * or as pieces; advances the cursor. Nothing is published: call publish().
   * Returns true once the whole message is written.
   */
  write(message: Uint8Array, cursor: { at: number }): boolean {
    const length = message.length;
    if (cursor.at === 0 && length <= this.maxPiece) {
      if (!this.#fits(recordBytes(length))) return false;
      this.#record(KIND_WHOLE, 0, message);
      cursor.at = length;
      return true;
    }
    for (;;) {
      const piece = Math.min(this.maxPiece, length - cursor.at);
      if (!this.#fits(recordBytes(piece))) return false;
      const kind = cursor.at === 0 ? KIND_FIRST : cursor.at + piece === length ? KIND_LAST : KIND_MIDDLE;
      this.#record(kind, kind === KIND_FIRST ? length : 0, message.subarray(cursor.at, cursor.at + piece));
      cursor.at += piece;
      if (cursor.at === length) return true;
    }
  }

  /** The bytes the next record of `message` (at `cursor.at`) needs free. */
  needs(message: Uint8Array, cursor: { at: number }): number {
    return recordBytes(Math.min(this.maxPiece, message.length - cursor.at));
  }

  #record(kind: number, total: number, payload: Uint8Array): void {
    const { data32 } = this.#m;
    const at = this.#tail & this.#mask;
    if (at + RECORD_HEADER <= this.#capacity) {
      // Little-endian machines (x64, arm64): the words as they are.
      const w = at >>> 2;
      data32[w] = payload.length;
      data32[w + 1] = kind;
      data32[w + 2] = total;
      data32[w + 3] = 0;
    } else {
      headerWords.setUint32(0, payload.length, true);
      headerWords.setUint32(4, kind, true);
      headerWords.setUint32(8, total, true);
      headerWords.setUint32(12, 0, true);
      this.#copyIn(header, at);
    }
    this.#copyIn(payload, (at + RECORD_HEADER) & this.#mask);
    const size = recordBytes(payload.length);
    this.#tail = (this.#tail + size) >>> 0;
    this.#room -= size;
  }

  #copyIn(bytes: Uint8Array, at: number): void {
    const { data } = this.#m;
    const first = this.#capacity - at;
    // A large record is for the receiver's CPU, not this one's cache (sys/streaming-copy.ts).
    const stream = bytes.length >= STREAMING_COPY_MIN_BYTES ? streamingCopy() : undefined;
    if (bytes.length <= first) {
      if (stream) stream(data, at, bytes);
      else data.set(bytes, at);
    } else if (stream) {
      stream(data, at, bytes.subarray(0, first));
      stream(data, 0, bytes.subarray(first));
    } else {
      data.set(bytes.subarray(0, first), at);
      data.set(bytes.subarray(first), 0);
    }
  }

  /**
   * Makes what was written visible to the receiver (one seq_cst store of TAIL),
   * then looks whether the receiver said it is going to sleep: true means ring its
   * doorbell (the flag is taken back, so one doorbell per sleep).
   */
  /** Whether records were written that are not published yet. */
  get unpublished(): boolean {
    return this.#tail !== this.#published;
  }

  publish(): boolean {
    if (this.#tail === this.#published) return false;
    this.#published = this.#tail;
    const i32 = this.#m.i32;
    Atomics.store(i32, I_TAIL, this.#tail | 0);
    return Atomics.load(i32, I_RECEIVER_SLEEPING) !== 0 && Atomics.exchange(i32, I_RECEIVER_SLEEPING, 0) !== 0;
  }

  /** Says this sender waits for room (SENDER_WAITING = 1), or no longer does. */
  waiting(on: boolean): void {
    Atomics.store(this.#m.i32, I_SENDER_WAITING, on ? 1 : 0);
  }
}
