/**
 * Envelope buffers a publisher reuses (issue 20 #8). A publisher copies each
 * message into an envelope that every subscriber's sender reads; a new buffer per
 * message made a 64 KiB stream fault in fresh pages for every message (the
 * garbage collector frees them late: 300 MiB resident, 69,000 page faults per
 * 256 MiB published), and copying into them cost 45% of the publisher's time.
 * Buffers of 4 KiB and more are kept by size class (powers of two) once all their
 * senders are done, up to POOL_BYTES in all; smaller ones come from Node's own pool.
 */
const POOLED_FROM = 4096;
const POOL_BYTES = 16 * 1024 * 1024;

export class EnvelopePool {
  readonly #header: number;
  readonly #free = new Map<number, Buffer[]>();
  #kept = 0;

  constructor(header: number) {
    this.#header = header;
  }

  /** A buffer for a message of `length` bytes and its header; `release()` once no sender reads it any more. */
  take(length: number): { envelope: Buffer; release: () => void; pooled: boolean } {
    const size = this.#header + length;
    if (size < POOLED_FROM) return { envelope: Buffer.allocUnsafe(size), release: () => {}, pooled: false };
    const capacity = 2 ** Math.ceil(Math.log2(size));
    const reused = this.#free.get(capacity)?.pop();
    if (reused) this.#kept -= capacity;
    const envelope = reused ?? Buffer.allocUnsafeSlow(capacity);
    let released = false;
    return {
      envelope,
      pooled: true,
      release: () => {
        if (released) return;
        released = true;
        if (this.#kept + capacity > POOL_BYTES) return;
        this.#kept += capacity;
        let list = this.#free.get(capacity);
        if (!list) this.#free.set(capacity, (list = []));
        list.push(envelope);
      },
    };
  }
}
