/**
 * The shared-memory driver: `shm://<name>` (Linux). Each sender has a ring of its
 * own in a segment under /dev/shm/npipe-<uid>/<name>/, announced to the name's one
 * receiver over a control FIFO; a message is copied into the ring and published by
 * one atomic store, and a doorbell byte wakes a receiver only when it sleeps
 * (docs/SHM.md). Messages are whole by construction: the format is not on the wire
 * (as over NATS, it only says how the CLI cuts its input).
 *
 * Request/reply is not offered here: serve() and connect() refuse with
 * ERR_NPIPE_UNSUPPORTED, and say what to use instead.
 */
import { UnsupportedError } from '../../errors.js';
import type { Driver } from '../types.js';
import { shmName } from './address.js';
import { openShmFrameSender } from './sender.js';

/** Why serve() and connect() refuse an shm:// address (a stable message, checked by the tests). */
export const NO_REQUEST_REPLY = 'request/reply is not available over shared memory (shm://); serve and connect on a FIFO path or a nats:// URL';

/** A raw byte stream from the CLI is cut into messages of this size. */
const RAW_PIECE = 1 << 20;

export const driver: Driver = {
  name: 'shm',
  noun: 'a shared-memory name',
  capabilities: {
    wireFormat: false,
    waitsForReader: false,
    acknowledges: false,
    rawPiece: RAW_PIECE,
    cliOptions: [],
  },
  openSender: async (address, framing, options) =>
    openShmFrameSender(shmName(address), {
      maxMessageSize: framing.maxMessageSize,
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.busyPoll === undefined ? {} : { busyPoll: options.busyPoll }),
      ...(options.ringSize === undefined ? {} : { ringSize: options.ringSize }),
    }),
  openReceiver: async (address, framing, options) =>
    (await import('./receiver.js')).openShmFrameReceiver(shmName(address), {
      maxMessageSize: framing.maxMessageSize,
      splitInto: framing.byteStream,
      ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
      ...(options.busyPoll === undefined ? {} : { busyPoll: options.busyPoll }),
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    }),
  serve: () => Promise.reject(new UnsupportedError(NO_REQUEST_REPLY)),
  connect: () => Promise.reject(new UnsupportedError(NO_REQUEST_REPLY)),
};
