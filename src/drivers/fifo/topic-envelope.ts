/**
 * What a publisher puts before each message in a subscriber's FIFO (issue 20):
 * a kind, the publisher's random id and the message's number in that publisher's
 * sequence. A subscriber counts the numbers it did not get from each publisher:
 * the messages it missed (a `drop` subscriber that fell behind), exactly.
 *
 *   kind (1 byte: 1 a message, 2 the publisher's last number, sent when it closes,
 *         3 the publisher disconnected this subscriber, too slow)
 *   publisher id (8 bytes)
 *   number (8 bytes, little-endian, from 1)
 *   the message
 */
export const ENVELOPE_BYTES = 17;
export const KIND_MESSAGE = 1;
export const KIND_LAST = 2;
/** The publisher let this subscriber go (the `disconnect` policy); the number is its last one. */
export const KIND_DISCONNECT = 3;

export interface Envelope {
  kind: number;
  /** The publisher's id, as 16 hex digits. */
  publisher: string;
  seq: number;
  body: Buffer;
}

/** `body` in its envelope, in `into` (at least ENVELOPE_BYTES + body.length bytes; a new buffer if not given): a view of exactly that. */
export function wrap(kind: number, publisher: Buffer, seq: number, body: Uint8Array, into?: Buffer): Buffer {
  const out = into ? into.subarray(0, ENVELOPE_BYTES + body.length) : Buffer.allocUnsafe(ENVELOPE_BYTES + body.length);
  out[0] = kind;
  publisher.copy(out, 1, 0, 8);
  out.writeBigUInt64LE(BigInt(seq), 9);
  // Buffer.copy is a memcpy; TypedArray.set was six times slower here for 64 KiB.
  (Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)).copy(out, ENVELOPE_BYTES);
  return out;
}

/** The envelope of `frame`, or undefined when it is not one (too short, an unknown kind). */
export function unwrap(frame: Buffer): Envelope | undefined {
  if (frame.length < ENVELOPE_BYTES || (frame[0] !== KIND_MESSAGE && frame[0] !== KIND_LAST && frame[0] !== KIND_DISCONNECT)) return undefined;
  return {
    kind: frame[0]!,
    publisher: frame.toString('hex', 1, 9),
    seq: Number(frame.readBigUInt64LE(9)),
    body: frame.subarray(ENVELOPE_BYTES),
  };
}
