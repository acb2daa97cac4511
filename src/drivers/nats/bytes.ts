/** A NATS message's payload as a Buffer over the same memory: no copy (it is valid until the connection reads again). */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
