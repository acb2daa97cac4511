/**
 * The server half of request/reply over NATS, with NATS's own request/reply: a
 * request is a message on the subject with a reply subject (an inbox of the
 * client's); the reply is one message to that inbox. Servers share a queue group,
 * so several servers on one subject share the requests. Any NATS client can call
 * an npipe server (`nats request jobs hello`). What npipe adds (acceptance,
 * cancellation, errors) is in headers: rpc-headers.ts.
 */
import { createInbox, Empty, headers, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { resolveCodec, type Codec } from '../../codec.js';
import { BusyError, ClosedError, FrameTooLargeError } from '../../errors.js';
import { checkBusyPoll, keepPolling } from '../../util/busy-poll.js';
import { Server, newServerStats, type ServerEvent, type ServerStats } from '../../rpc/types.js';
import { Cancel, runHandler, type Handler } from '../../rpc/handler.js';
import { DEFAULT_CONCURRENCY, DEFAULT_MAX_WAITING_BYTES, DEFAULT_RPC_MAX_MESSAGE } from '../../rpc/limits.js';
import type { ServeOptions } from '../../rpc/types.js';
import { asBuffer } from './bytes.js';
import { connectNats, maxPayload } from './connection.js';
import { lostAtStart } from './failures.js';
import { CONTROL_PREFIX, H_CANCEL, H_CLIENT, H_ERROR_CODE, H_SERVER, H_SERVICE_ERROR, H_SERVICE_ERROR_CODE, H_STATUS } from './rpc-headers.js';
import { withServer } from './servers.js';
import { parseRequestReplyUrl, type NatsAddress } from './url.js';
import type { MediumOptions } from '../types.js';

/** A request not answered within this long is acknowledged with the server's address (cancel, liveness). */
const ACCEPT_AFTER_MS = 20;

/** A header value is one line: NATS headers cannot carry CR or LF. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 1024);
}

/** Room left for an error's headers (each capped at 1 KiB by oneLine). */
const ERROR_HEADERS_ROOM = 4096;

/**
 * An error text as an error reply's body can carry it: cut to at most `room` bytes
 * of UTF-8, marked " [cut]". Whole, a handler's 2 MB error text was over the
 * server's max_payload: the publish failed and the client waited until its timeout.
 */
function withinBytes(text: string, room: number): string {
  if (Buffer.byteLength(text) <= room) return text;
  return `${text.slice(0, Math.max(0, Math.floor((room - 6) / 4)))} [cut]`;
}

/**
 * What a waiting request counts against maxWaitingBytes beside its payload: its
 * reply subject, its timer and bookkeeping. So that requests with empty payloads
 * are bounded too (at the default 4 MiB, 8192 of them).
 */
export const WAITING_REQUEST_OVERHEAD = 512;

interface Job {
  /** The request's payload; a copy once it waits, so that it does not hold the connection's read buffer. */
  payload: Buffer;
  /** What it counts against maxWaitingBytes while it waits. */
  cost: number;
  reply: string;
  cancel: Cancel;
  accept: NodeJS.Timeout | undefined;
  started: boolean;
}

export class NatsServer extends Server {
  readonly stats: ServerStats = newServerStats();
  readonly done: Promise<void>;
  readonly #nc: NatsConnection;
  readonly #address: NatsAddress;
  readonly #handler: Handler<unknown, unknown>;
  readonly #codec: Codec<unknown>;
  readonly #options: ServeOptions<unknown, unknown>;
  readonly #limit: number;
  readonly #busyPoll: number;
  readonly #requests: Subscription;
  readonly #control: Subscription;
  /** This server's own subject: cancellations and liveness checks. */
  readonly #controlSubject = createInbox(CONTROL_PREFIX);
  /** Requests taken and not answered, by reply subject. */
  readonly #jobs = new Map<string, Job>();
  readonly #waiting: Job[] = [];
  #waitingBytes = 0;
  #running = 0;
  #closing: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  /** @internal */
  constructor(nc: NatsConnection, address: NatsAddress, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown>) {
    super();
    this.#nc = nc;
    this.#address = address;
    this.#handler = handler;
    this.#options = options;
    this.#codec = resolveCodec(options.codec, 'text');
    this.#limit = Math.min(options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE, maxPayload(nc));
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#requests = nc.subscribe(address.subject, { queue: address.group, callback: (err, msg) => {
      if (!err) this.#take(msg);
    } });
    this.#control = nc.subscribe(this.#controlSubject, { callback: (err, msg) => {
      if (!err) this.#onControl(msg);
    } });
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
    this.done = nc.closed().then(() => {});
  }

  get clients(): number {
    const clients = new Set<string>();
    for (const reply of this.#jobs.keys()) clients.add(reply.slice(0, reply.lastIndexOf('.')));
    return clients.size;
  }

  #event(event: ServerEvent): void {
    this.#options.onEvent?.(event);
  }

  #take(msg: Msg): void {
    keepPolling(this.#busyPoll);
    if (!msg.reply) {
      this.stats.refused++;
      this.#event({ kind: 'bad-message', reason: `a message on ${this.#address.subject} without a reply subject (publish it as a request)` });
      return;
    }
    if (msg.reply.startsWith('$')) {
      // $JS.API..., $SYS...: the reply would be a system request made with this server's permissions.
      this.stats.refused++;
      this.#event({ kind: 'bad-message', reason: `a request on ${this.#address.subject} whose reply subject is a system subject ($...): not answered` });
      return;
    }
    this.stats.requests++;
    if (msg.data.byteLength > this.#limit) {
      this.stats.refused++;
      this.#event({ kind: 'refused', client: msg.reply, reason: `request of ${msg.data.byteLength} bytes over the limit of ${this.#limit}` });
      this.#respondError(msg.reply, new FrameTooLargeError(msg.data.byteLength, this.#limit, 'request'));
      return;
    }
    const maxWaiting = this.#options.maxWaitingBytes ?? DEFAULT_MAX_WAITING_BYTES;
    const concurrency = this.#options.concurrency ?? DEFAULT_CONCURRENCY;
    const cost = msg.data.byteLength + WAITING_REQUEST_OVERHEAD;
    if (this.#running >= concurrency && this.#waitingBytes + cost > maxWaiting) {
      this.stats.refused++;
      this.#event({ kind: 'refused', client: msg.reply, reason: 'too many requests waiting' });
      this.#respondError(
        msg.reply,
        new BusyError(`the server has ${this.#waiting.length} requests (${this.#waitingBytes} bytes with overhead) waiting (maxWaitingBytes); try again later`),
      );
      return;
    }
    const waits = this.#running >= concurrency;
    const job: Job = { payload: waits ? Buffer.from(msg.data) : asBuffer(msg.data), cost, reply: msg.reply, cancel: new Cancel(), accept: undefined, started: false };
    this.#jobs.set(job.reply, job);
    if (msg.headers?.get(H_CLIENT)) {
      job.accept = setTimeout(() => {
        job.accept = undefined;
        this.#publish(job.reply, Empty, this.#acceptHeaders());
      }, ACCEPT_AFTER_MS);
    }
    if (!waits) void this.#run(job);
    else {
      this.#waiting.push(job);
      this.#waitingBytes += cost;
    }
  }

  #acceptHeaders(): MsgHdrs {
    const h = headers();
    h.set(H_STATUS, 'accepted');
    h.set(H_SERVER, this.#controlSubject);
    return h;
  }

  async #run(job: Job): Promise<void> {
    job.started = true;
    this.#running++;
    const outcome = await runHandler(this.#handler, this.#codec, job.payload, job.cancel, job.reply);
    this.#running--;
    this.#finish(job);
    if (!job.cancel.aborted || this.#closing) {
      if (outcome.ok) {
        if (outcome.payload.byteLength > this.#limit) {
          this.stats.errors++;
          this.#respondError(job.reply, new FrameTooLargeError(outcome.payload.byteLength, this.#limit, 'reply'));
        } else {
          this.stats.replies++;
          this.#publish(job.reply, outcome.payload);
        }
      } else {
        this.stats.errors++;
        this.#publishError(job.reply, outcome.code, outcome.message);
      }
    }
    this.#next();
  }

  #finish(job: Job): void {
    clearTimeout(job.accept);
    this.#jobs.delete(job.reply);
  }

  #next(): void {
    const concurrency = this.#options.concurrency ?? DEFAULT_CONCURRENCY;
    while (this.#running < concurrency && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      this.#waitingBytes -= job.cost;
      if (job.cancel.aborted) continue;
      void this.#run(job);
    }
    if (this.#running === 0) this.#idle?.();
  }

  #onControl(msg: Msg): void {
    const reply = msg.headers?.get(H_CANCEL);
    if (!reply) {
      // A liveness check: answering is the answer.
      if (msg.reply) msg.respond(Empty);
      return;
    }
    const job = this.#jobs.get(reply);
    if (!job) return;
    this.stats.cancelled++;
    job.cancel.abort(new ClosedError('the client cancelled the request'));
    if (!job.started) {
      this.#finish(job);
      const i = this.#waiting.indexOf(job);
      if (i >= 0) {
        this.#waiting.splice(i, 1);
        this.#waitingBytes -= job.cost;
      }
    }
  }

  #publish(subject: string, data: Uint8Array, h?: MsgHdrs): void {
    keepPolling(this.#busyPoll); // nats.js writes on a later turn; the client's next request is likely to follow
    try {
      this.#nc.publish(subject, data, h ? { headers: h } : undefined);
    } catch (err) {
      this.stats.repliesDropped++;
      this.#event({ kind: 'reply-dropped', client: subject, reason: (err as Error).message });
    }
  }

  #respondError(reply: string, err: { code: string; message: string }): void {
    this.#publishError(reply, err.code, err.message);
  }

  #publishError(reply: string, code: string, message: string): void {
    const h = headers();
    h.set(H_SERVICE_ERROR, oneLine(message) || code);
    h.set(H_SERVICE_ERROR_CODE, '500');
    h.set(H_ERROR_CODE, oneLine(code));
    this.#publish(reply, Buffer.from(withinBytes(message, this.#limit - ERROR_HEADERS_ROOM)), h);
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      // No new requests; those already delivered to us are still taken (drain).
      await this.#requests.drain().catch(() => {});
      const closing = new ClosedError('the server is closing');
      for (const job of this.#waiting.splice(0)) {
        this.#finish(job);
        this.#respondError(job.reply, closing);
      }
      this.#waitingBytes = 0;
      for (const job of this.#jobs.values()) job.cancel.abort(closing);
      if (this.#running > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      this.#control.unsubscribe();
      await this.#nc.drain().catch(() => this.#nc.close());
      await this.done;
    })());
  }
}

/**
 * Serves requests arriving on a NATS subject (`nats://host:port/subject`); the
 * same handler contract as over FIFOs.
 * @throws ERR_NPIPE_UNREACHABLE (no NATS server), ERR_NPIPE_INVALID_ARG (bad URL).
 */
export async function serveNats(url: string, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown> & MediumOptions): Promise<NatsServer> {
  const address = withServer(url, parseRequestReplyUrl(url), options.nats);
  const nc = await connectNats(address, {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.nats === undefined ? {} : { nats: options.nats }),
  });
  const server = new NatsServer(nc, address, handler, options);
  // The subscription is on the server once this returns: a client's first request finds us.
  await nc.flush().catch((err: unknown) => lostAtStart(nc, address, err));
  return server;
}

