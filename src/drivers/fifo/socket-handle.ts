/**
 * The two things the FIFO driver needs from a net.Socket's libuv handle
 * (`socket._handle`, a StreamWrap), which Node 20 does not offer publicly. Every
 * reach into the handle is here, and each degrades to what the public API allows
 * when the handle lacks it (a Node that renamed it).
 */
import type { Socket } from 'node:net';

/** The part of a net.Socket's handle this file uses. */
interface StreamHandle {
  /** Bytes handed to libuv and not yet written (uv_stream_t.write_queue_size), read live. */
  writeQueueSize: number;
  /** Sets the buffer the next read goes into (the `onread` option's buffer). */
  useUserBuffer(buffer: Uint8Array): void;
}

function handleOf(socket: Socket): Partial<StreamHandle> | undefined {
  return (socket as unknown as { _handle?: Partial<StreamHandle> | null })._handle ?? undefined;
}

/**
 * Bytes of the socket's writes still waiting for the pipe to take them, or -1 if
 * that cannot be read. It falls as a reader drains the pipe in the middle of one
 * write, which is how a sender tells a slow reader from one that stopped. The
 * public counts do not move until the whole write is done: `bytesWritten` counts a
 * write when it is handed to libuv, and `writableLength` drops it only at its
 * callback (checked on Node 20.20 with a 1 MiB write drained 64 KiB at a time).
 */
export function writeQueueSize(socket: Socket): number {
  return handleOf(socket)?.writeQueueSize ?? -1;
}

/**
 * A function that points the socket's next read at the buffer `next()` returns,
 * now; undefined where the handle cannot do that. The public `onread.buffer`
 * function is asked once per read, after it: a read already armed (waiting in
 * epoll for data) would still land in the buffer given before, which a receiver
 * that lent a receiveInto() buffer must take back at once when that call ends.
 */
export function userBufferSetter(socket: Socket, next: () => Buffer): (() => void) | undefined {
  const handle = handleOf(socket);
  if (typeof handle?.useUserBuffer !== 'function') return undefined;
  return () => handle.useUserBuffer!(next());
}
