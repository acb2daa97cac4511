/**
 * The library's entry points: openSender, openReceiver, serve and connect. Each
 * resolves its address to a driver (registry.ts) and hands over; nothing here asks
 * which transport it is.
 */
import { InvalidArgumentError } from './errors.js';
import { resolveCodec, type Codec, type CodecName } from './codec.js';
import { createFraming, type FormatName } from './framing/index.js';
import type { DriverReceiverOptions, DriverSenderOptions } from './drivers/types.js';
import { Receiver, Sender } from './messaging.js';
import { driverFor } from './registry.js';
import type { Client, ConnectOptions, Server, ServeOptions } from './rpc/types.js';
import type { Handler } from './rpc/handler.js';
import { DEFAULT_CONCURRENCY } from './rpc/limits.js';
import type { Delivery } from './drivers/nats/url.js';
import { checkTimeout } from './util/abort.js';
import { checkBusyPoll } from './util/busy-poll.js';

/**
 * The library's default format: `frames` carries any bytes, and whole messages of
 * any size from any number of writers sharing the FIFO.
 */
export const DEFAULT_FORMAT: FormatName = 'frames';

interface MessageOptions<T> {
  /** Wire format (default `frames`; the CLI's default is `lines`). */
  format?: FormatName | string;
  /** Payload codec (default `text`, or `bytes` for the `raw` format). */
  codec?: CodecName | Codec<T>;
  /** Largest message accepted or sent, in bytes (default 64 MiB; over NATS, at most the server's max_payload). */
  maxMessageSize?: number;
  /**
   * For a `nats://` address: `core` (at most once, the default) or `jetstream`
   * (stored, acknowledged, at least once). Overrides the URL's `?delivery=`.
   */
  delivery?: Delivery;
}

export interface SenderOptions<T = string> extends DriverSenderOptions, MessageOptions<T> {}
export interface ReceiverOptions<T = string> extends DriverReceiverOptions, MessageOptions<T> {
  /**
   * Core NATS only: bytes of messages received and not yet taken before new ones
   * are dropped (counted in `dropped`, reported to `onDrop` as `slow-consumer`):
   * core NATS cannot slow a sender down (default 64 MiB, at most 524288 messages).
   */
  maxQueuedBytes?: number;
}

function framingFor(options: MessageOptions<unknown> & { maxPartialBytes?: number }) {
  const format = options.format ?? DEFAULT_FORMAT;
  return {
    framing: createFraming(format, {
      ...(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize }),
      ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
    }),
    defaultCodec: (format === 'raw' ? 'bytes' : 'text') as CodecName,
  };
}

/**
 * Opens `path` for sending, creating the FIFO if it is missing (unless
 * `create: false`), and waits for a reader (up to `timeout`, or until `signal`).
 * `timeout` means no progress for that long, for the sender's whole life: no
 * reader came, or the pipe took no byte of a message being written (a reader
 * that stopped reading): ERR_NPIPE_TIMEOUT. 0: fail at once when there is no
 * reader (writes are then not bounded). Values past 2^31-1 ms are honoured.
 *
 * @throws ERR_NPIPE_TIMEOUT, ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND,
 *   ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 * @example
 * const sender = await openSender('/tmp/jobs', { format: 'lines', timeout: 5000 });
 * await sender.send('hello');
 * await sender.close();
 */
export async function openSender<T = string>(path: string, options: SenderOptions<T> = {}): Promise<Sender<T>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<T>(options.codec, defaultCodec);
  const frames = await (await driverFor(path)).openSender(path, framing, options);
  return new Sender(frames, codec);
}

/**
 * Opens `path` for receiving, creating the FIFO if it is missing (unless
 * `create: false`). Never waits for a writer. By default it keeps listening while
 * writers come and go; `keepOpen: false` ends it at the first end of file.
 * `timeout`: each `receive()`/`receiveInto()` (and iterator step) that gets no
 * message for that long rejects with ERR_NPIPE_TIMEOUT.
 *
 * @throws ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_NOT_FOUND, ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 * @example
 * const receiver = await openReceiver('/tmp/jobs', { format: 'lines' });
 * for await (const message of receiver) console.log(message);
 */
export async function openReceiver<T = string>(path: string, options: ReceiverOptions<T> = {}): Promise<Receiver<T>> {
  const { framing, defaultCodec } = framingFor(options);
  const codec = resolveCodec<T>(options.codec, defaultCodec);
  checkTimeout(options.timeout); // before anything is opened: a bad value leaves no fd behind
  if (options.signal?.aborted) throw options.signal.reason;
  const frames = await (await driverFor(path)).openReceiver(path, framing, options);
  return new Receiver(frames, codec, options.timeout, path);
}

/**
 * Serves requests arriving on `path` (a FIFO path or a nats:// URL):
 * `handler(request, { signal })` returns the reply or throws (the client gets a
 * RemoteError with the error's code and message).
 *
 * Concurrency: up to `concurrency` handlers run at once, across all clients.
 * @throws ERR_NPIPE_INVALID_ARG (no handler, a bad option), ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE,
 *   ERR_NPIPE_PERMISSION (opening the request FIFO), ERR_NPIPE_UNREACHABLE (no NATS server).
 * @example
 * const server = await serve('/tmp/calc', async (req) => String(eval(req)));
 */
export async function serve<Req = string, Res = Req>(path: string, handler: Handler<Req, Res>, options: ServeOptions<Req, Res> = {}): Promise<Server> {
  if (typeof handler !== 'function') throw new InvalidArgumentError('serve() needs a handler function');
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a whole number >= 1, got ${concurrency}`);
  if (options.signal?.aborted) throw options.signal.reason;
  checkBusyPoll(options.busyPoll);
  return (await driverFor(path)).serve(path, handler as Handler<unknown, unknown>, options as ServeOptions<unknown, unknown>);
}

/**
 * Connects to the server on `path` (a FIFO path or a nats:// URL).
 * @throws ERR_NPIPE_SERVER_GONE (no server, without waitForServer), ERR_NPIPE_UNSAFE
 *   (reply folder not private), ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNREACHABLE (no NATS server).
 */
export async function connect<Req = string, Res = Req>(path: string, options: ConnectOptions<Req, Res> = {}): Promise<Client<Req, Res>> {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('path must be a non-empty string');
  checkBusyPoll(options.busyPoll);
  return (await driverFor(path)).connect(path, options as ConnectOptions<unknown, unknown>) as Promise<Client<Req, Res>>;
}
