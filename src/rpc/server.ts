/**
 * serve(): one server, many clients, over any Transport. Nothing a client does can
 * stall it: replies go to each client through its own non-blocking sender with a
 * bounded queue; a reply to a client that is gone, or that would overflow its
 * queue, is dropped and counted; a reply address outside the transport's private
 * reply folders is refused and reported.
 */
import { ClosedError, InvalidArgumentError, NpipeError } from '../errors.js';
import { resolveCodec, type Codec, type CodecName } from '../codec.js';
import { FifoTransport } from '../transport/fifo-transport.js';
import type { FrameReceiver, FrameSender, Transport } from '../transport/types.js';
import { CANCEL, REQUEST, decodeRpc, encodeError, encodeReply, REPLY } from './protocol.js';
import { Cancel, runHandler, type Handler } from './handler.js';
import { Server, newServerStats, type ServerEvent, type ServerStats } from './base.js';
import { isNatsUrl } from '../transport/nats/url.js';
import { checkBusyPoll, keepPolling } from '../util/busy-poll.js';

export type { Handler, HandlerContext } from './handler.js';

export interface ServeOptions<Req, Res> {
  /** Closes the server when it aborts. */
  signal?: AbortSignal;
  /** Handlers running at once (default 64); more requests wait their turn. */
  concurrency?: number;
  /** Payload codec for requests and replies (default text). */
  codec?: CodecName | Codec<Req & Res>;
  /** Largest request or reply in bytes (default 1 MiB); larger requests are dropped and reported. */
  maxMessageSize?: number;
  /**
   * FIFO only (over NATS the NATS server buffers replies). Reply bytes queued for
   * one client before the server stops starting handlers for it (default 4 MiB). A
   * client that reads none of its replies for `stuckAfter` ms is dropped: its
   * queued replies and waiting requests with it.
   */
  maxQueuedReplyBytes?: number;
  /** FIFO only. ms without a reply delivered to a client with replies queued, before it counts as stuck (default 10000). */
  stuckAfter?: number;
  /**
   * Request bytes waiting for a handler (default 4 MiB), per client over FIFOs, in
   * all over NATS; beyond, the request gets an ERR_NPIPE_BUSY error reply.
   */
  maxWaitingBytes?: number;
  onEvent?: (event: ServerEvent) => void;
  /**
   * Microseconds to keep polling for the next request instead of sleeping, after
   * each request taken and reply sent (default 0: off). Cuts the round trip where
   * waking an idle CPU is costly (virtual machines), at the price of that much CPU
   * time; see docs/TUNING.md. Like Linux's SO_BUSY_POLL.
   */
  busyPoll?: number;
  /** FIFO only: the medium for a path (default: FIFOs). A nats:// URL always uses NATS. */
  transport?: Transport;
}


interface Job {
  id: number;
  payload: Buffer;
}

interface ClientState {
  address: string;
  sender: Promise<FrameSender> | undefined;
  /** The sender once open: replies go straight to it. */
  ready: FrameSender | undefined;
  handlers: Map<number, Cancel>;
  /** Requests waiting for a handler, oldest first, and their bytes. */
  jobs: Job[];
  jobBytes: number;
  /** Reply bytes handed to the sender and not yet in the client's FIFO. */
  queuedBytes: number;
  lastActive: number;
  /** Last time a reply reached the client's FIFO (or its queue was empty). */
  lastProgress: number;
  gone: boolean;
}

/** A client with nothing in progress for this long has its reply sender closed (reopened on its next request). */
const IDLE_CLIENT_MS = 1000;

/** The FIFO server (request/reply protocol in docs/RPC.md). */
export class FifoServer extends Server {
  readonly stats: ServerStats = newServerStats();
  /** Settles when the server has stopped (after close(), or its signal). */
  readonly done: Promise<void>;
  readonly #receiver: FrameReceiver;
  readonly #transport: Transport;
  readonly #handler: Handler<unknown, unknown>;
  readonly #codec: Codec<unknown>;
  readonly #options: ServeOptions<unknown, unknown>;
  readonly #clients = new Map<string, ClientState>();
  /** Clients with requests waiting and room for replies, in round-robin order: one busy client cannot starve the others. */
  readonly #ready = new Set<ClientState>();
  readonly #closeController = new AbortController();
  readonly #busyPoll: number;
  #running = 0;
  #sweeper: NodeJS.Timeout;

  /** @internal */
  constructor(receiver: FrameReceiver, handler: Handler<unknown, unknown>, transport: Transport, options: ServeOptions<unknown, unknown>) {
    super();
    this.#receiver = receiver;
    this.#handler = handler;
    this.#transport = transport;
    this.#options = options;
    this.#codec = resolveCodec(options.codec, 'text');
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#sweeper = setInterval(() => this.#closeIdleClients(), IDLE_CLIENT_MS);
    this.#sweeper.unref();
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
    this.done = this.#loop();
  }

  get clients(): number {
    return this.#clients.size;
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.#receiver.receive();
        if (frame === undefined) break;
        keepPolling(this.#busyPoll);
        this.#dispatch(frame);
      }
    } finally {
      clearInterval(this.#sweeper);
      const closing = new ClosedError('the server is closing');
      this.#closeController.abort(closing);
      for (const client of this.#clients.values()) {
        for (const cancel of client.handlers.values()) cancel.abort(closing);
        void this.#dropClient(client);
      }
    }
  }

  #event(event: ServerEvent): void {
    this.#options.onEvent?.(event);
  }

  #dispatch(frame: Buffer): void {
    let message;
    try {
      message = decodeRpc(frame);
    } catch (err) {
      this.#event({ kind: 'bad-message', reason: (err as Error).message });
      return;
    }
    if (message.type !== REQUEST && message.type !== CANCEL) {
      this.#event({ kind: 'bad-message', reason: `unexpected message type ${message.type} on the request FIFO` });
      return;
    }
    const client = this.#client(message.replyTo);
    client.lastActive = Date.now();
    if (message.type === CANCEL) {
      const handler = client.handlers.get(message.id);
      if (handler) {
        this.stats.cancelled++;
        handler.abort(new ClosedError('the client cancelled this request'));
      } else {
        // Not started yet: take it out of the queue.
        const at = client.jobs.findIndex((j) => j.id === message.id);
        if (at !== -1) {
          client.jobBytes -= client.jobs[at]!.payload.length;
          client.jobs.splice(at, 1);
          this.stats.cancelled++;
        }
      }
      return;
    }
    this.stats.requests++;
    if (client.jobBytes + message.payload.length > (this.#options.maxWaitingBytes ?? 4 * 1024 * 1024)) {
      this.stats.errors++;
      this.#reply(client, encodeError(message.id, 'ERR_NPIPE_BUSY', 'too many requests from this client are waiting; retry later'));
      return;
    }
    client.jobs.push({ id: message.id, payload: Buffer.from(message.payload) });
    client.jobBytes += message.payload.length;
    this.#schedule(client);
    this.#next();
  }

  /** Puts the client in the ready set if it has requests waiting and room for their replies. */
  #schedule(client: ClientState): void {
    const limit = this.#options.maxQueuedReplyBytes ?? 4 * 1024 * 1024;
    if (!client.gone && client.jobs.length > 0 && client.queuedBytes < limit) this.#ready.add(client);
    else this.#ready.delete(client);
  }

  #client(address: string): ClientState {
    let client = this.#clients.get(address);
    if (!client) {
      const now = Date.now();
      client = { address, sender: undefined, ready: undefined, handlers: new Map(), jobs: [], jobBytes: 0, queuedBytes: 0, lastActive: now, lastProgress: now, gone: false };
      this.#clients.set(address, client);
    }
    return client;
  }

  #next(): void {
    const concurrency = this.#options.concurrency ?? 64;
    while (this.#running < concurrency && this.#ready.size > 0) {
      const client: ClientState = this.#ready.values().next().value!;
      this.#ready.delete(client);
      const job = client.jobs.shift()!;
      client.jobBytes -= job.payload.length;
      this.#schedule(client); // to the back of the round
      this.#running++;
      void this.#run(client, job).finally(() => {
        this.#running--;
        this.#next();
      });
    }
  }

  async #run(client: ClientState, { id, payload }: Job): Promise<void> {
    const cancel = new Cancel();
    client.handlers.set(id, cancel);
    const outcome = await runHandler(this.#handler, this.#codec, payload, cancel, client.address);
    client.handlers.delete(id);
    const failed = !outcome.ok;
    const reply = outcome.ok ? encodeReply(REPLY, id, outcome.payload) : encodeError(id, outcome.code, outcome.message);
    // Cancelled by the client: it no longer waits for an answer.
    if (cancel.aborted && !this.#closeController.signal.aborted) return;
    if (failed) this.stats.errors++;
    else this.stats.replies++;
    this.#reply(client, reply);
  }

  #reply(client: ClientState, reply: Buffer): void {
    if (client.gone) {
      this.stats.repliesDropped++;
      this.#event({ kind: 'reply-dropped', client: client.address, reason: 'the client is gone' });
      return;
    }
    if (client.queuedBytes === 0) client.lastProgress = Date.now();
    client.queuedBytes += reply.length;
    client.lastActive = Date.now();
    this.#schedule(client);
    let sending: Promise<void>;
    if (client.ready) sending = client.ready.send(reply);
    else {
      client.sender ??= this.#transport.openReply(client.address).then((sender) => (client.ready = sender));
      sending = client.sender.then((sender) => sender.send(reply));
    }
    sending.then(
        () => {
          keepPolling(this.#busyPoll); // the client's next request is likely to follow at once
          client.queuedBytes -= reply.length;
          client.lastProgress = Date.now();
          this.#schedule(client);
          this.#next();
        },
        (err: unknown) => {
          client.queuedBytes -= reply.length;
          this.stats.repliesDropped++;
          const code = err instanceof NpipeError ? err.code : '';
          if (code === 'ERR_NPIPE_UNSAFE' || code === 'ERR_NPIPE_NOT_FIFO' || code === 'ERR_NPIPE_INVALID_ARG') {
            this.stats.refused++;
            this.#event({ kind: 'refused', client: client.address, reason: (err as Error).message });
          } else {
            this.#event({ kind: 'reply-dropped', client: client.address, reason: (err as Error).message });
          }
          void this.#dropClient(client);
        },
      );
  }

  /** The client is gone (or refused): stop its handlers, close its sender, forget it. */
  async #dropClient(client: ClientState): Promise<void> {
    client.gone = true;
    this.#ready.delete(client);
    if (client.jobs.length > 0) {
      this.stats.repliesDropped += client.jobs.length;
      client.jobs = [];
      client.jobBytes = 0;
    }
    if (this.#clients.get(client.address) === client) this.#clients.delete(client.address);
    for (const handler of client.handlers.values()) handler.abort(new ClosedError('the client went away'));
    const sender = await client.sender?.catch(() => undefined);
    await sender?.close({ signal: AbortSignal.abort() }).catch(() => {});
  }

  /** Closes the reply senders of clients with nothing in progress: a new request reopens it. */
  #closeIdleClients(): void {
    const now = Date.now();
    const stuckAfter = this.#options.stuckAfter ?? 10_000;
    for (const client of this.#clients.values()) {
      if (client.queuedBytes > 0 && now - client.lastProgress > stuckAfter) {
        this.#event({ kind: 'reply-dropped', client: client.address, reason: `the client read none of its replies for ${stuckAfter} ms; dropped` });
        void this.#dropClient(client);
      } else if (client.handlers.size === 0 && client.jobs.length === 0 && client.queuedBytes === 0 && now - client.lastActive > IDLE_CLIENT_MS) {
        void this.#dropClient(client);
      }
    }
  }

  /**
   * Stops taking requests, aborts running handlers (their signals), and closes the
   * request endpoint (the FIFO stays on disk). Idempotent; resolves when done.
   */
  async close(): Promise<void> {
    await this.#receiver.close();
    await this.done;
  }
}

/**
 * Serves requests arriving on `path`: `handler(request, { signal })` returns the
 * reply or throws (the client gets a RemoteError with the error's code and message).
 *
 * Concurrency: up to `concurrency` handlers run at once, across all clients.
 * @throws ERR_NPIPE_NOT_FIFO, ERR_NPIPE_UNSAFE, ERR_NPIPE_PERMISSION (opening the request FIFO).
 * @example
 * const server = await serve('/tmp/calc', async (req) => String(eval(req)));
 */
export async function serve<Req = string, Res = Req>(
  path: string,
  handler: Handler<Req, Res>,
  options: ServeOptions<Req, Res> = {},
): Promise<Server> {
  if (typeof handler !== 'function') throw new InvalidArgumentError('serve() needs a handler function');
  const concurrency = options.concurrency ?? 64;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a whole number >= 1, got ${concurrency}`);
  if (options.signal?.aborted) throw options.signal.reason;
  checkBusyPoll(options.busyPoll);
  if (isNatsUrl(path)) return (await import('./nats.js')).serveNats(path, handler as Handler<unknown, unknown>, options as ServeOptions<unknown, unknown>);
  const transport = options.transport ?? new FifoTransport(options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize });
  const receiver = await transport.listen(path, {
    // A request too large, or cut by a client killed mid-message: it never reaches a handler.
    onDrop: (d) => options.onEvent?.({ kind: 'frame-dropped', reason: `${d.reason}, ${d.bytes} bytes (pid ${d.pid || 'unknown'})` }),
  });
  return new FifoServer(receiver, handler as Handler<unknown, unknown>, transport, options as ServeOptions<unknown, unknown>);
}
