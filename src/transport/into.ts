import { BufferTooSmallError, InvalidArgumentError } from '../errors.js';

/** Why receiveInto() cannot take `target`, or undefined when it can. */
export function badTarget(target: unknown): InvalidArgumentError | undefined {
  return target instanceof Uint8Array ? undefined : new InvalidArgumentError('receiveInto() needs a Buffer or Uint8Array to receive into');
}

/**
 * Copies `frame` into the start of `target` and returns its length; throws
 * ERR_NPIPE_BUFFER_TOO_SMALL (the frame as its payload) when it does not fit. A
 * frame that already is `target`'s memory (read into it) is not copied.
 */
export function copyInto(frame: Buffer, target: Uint8Array): number {
  if (frame.buffer === target.buffer && frame.byteOffset === target.byteOffset) return frame.length;
  if (frame.length > target.length) throw new BufferTooSmallError(frame, target.length);
  target.set(frame);
  return frame.length;
}
