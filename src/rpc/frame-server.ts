/**
 * serve(): one server, many clients, over any Transport. Nothing a client does can
 * stall it: replies go to each client through its own non-blocking sender with a
 * bounded queue; a reply to a client that is gone, or that would overflow its
 * queue, is dropped and counted; a reply address outside the transport's private
 * reply folders is refused and reported.
 */
import { ClosedError, FrameTooLargeError, NpipeError } from '../errors.js';
import { resolveCodec, type Codec } from '../codec.js';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_QUEUED_REPLY_BYTES,
  DEFAULT_MAX_TOTAL_QUEUED_REPLY_BYTES,
  DEFAULT_MAX_TOTAL_WAITING_BYTES,
  DEFAULT_MAX_WAITING_BYTES,
  DEFAULT_RPC_MAX_MESSAGE,
  DEFAULT_STUCK_AFTER_MS,
  ERROR_REPLY_QUEUE,
  EVENTS_PER_SECOND,
  IDLE_CLIENT_MS,
  REPLY_COST,
  REQUEST_COST,
} from './limits.js';
import type { FrameReceiver, FrameSender, Transport } from '../transport/types.js';
import { CANCEL, ERROR, REPLY, SIZE, decodeRpc, encodeError, encodeErrorWithin, encodeReply, type KnownAddress, type RpcMessage } from './protocol.js';
import { Cancel, runHandler, type Handler, type Outcome } from './handler.js';
import { compact } from '../framing/index.js';
import { Server, newServerStats, type ServeOptions, type ServerEvent, type ServerStats } from './types.js';
import { checkBusyPoll, keepPolling } from '../util/busy-poll.js';

interface Job {
  id: number;
  payload: Buffer;
  /** Largest reply frame the client takes (0: not said). */
  maxReply: number;
}

interface ClientState {
  address: string;
  /** Who the transport says owns the address (FIFO: the reply folder's uid): requests are shared round-robin across owners first. */
  owner: number;
  sender: Promise<FrameSender | undefined>;
  /** The sender once open: replies go straight to it, and the client's requests may start. */
  ready: FrameSender | undefined;
  handlers: Map<number, Cancel>;
  /**
   * Requests waiting for a handler by id, oldest first (a Map keeps insertion order), and what they cost
   * (payloads plus REQUEST_COST each). By id: a CANCEL finds its request at once, so a flood of CANCELs
   * costs the server nothing per waiting request (a search of up to 8,192 each was CPU open to anyone).
   */
  jobs: Map<number, Job>;
  jobBytes: number;
  /** Reply bytes (plus REPLY_COST each) handed to the sender and not yet in the client's FIFO. */
  queuedBytes: number;
  lastActive: number;
  /** Last time a reply reached the client's FIFO (or its queue was empty). */
  lastProgress: number;
  gone: boolean;
}

/** The ERR_NPIPE_BUSY error bodies, made once: a flood of requests is answered without building JSON for each. */
const BUSY_CLIENT = Buffer.from(JSON.stringify({ code: 'ERR_NPIPE_BUSY', message: 'too many requests from this client are waiting; retry later' }));
const BUSY_ALL = Buffer.from(JSON.stringify({ code: 'ERR_NPIPE_BUSY', message: 'too many requests from all clients are waiting; retry later' }));

/**
 * A request/reply server over any frame Transport (request/reply protocol in
 * docs/RPC.md); serve() on a FIFO path runs one over FifoTransport.
 */
export class FrameServer extends Server {
  readonly stats: ServerStats = newServerStats();
  /** Settles when the server has stopped (after close(), or its signal). */
  readonly done: Promise<void>;
  #receiver: FrameReceiver;
  /** Opens the request endpoint afresh, after a writer broke the stream's format; undefined: that ends the server. */
  readonly #reopen: (() => Promise<FrameReceiver>) | undefined;
  #closing = false;
  readonly #transport: Transport;
  readonly #handler: Handler<unknown, unknown>;
  readonly #codec: Codec<unknown>;
  readonly #options: ServeOptions<unknown, unknown>;
  readonly #limit: number;
  readonly #maxWaiting: number;
  readonly #maxTotalWaiting: number;
  readonly #maxQueuedReply: number;
  readonly #maxTotalQueuedReply: number;
  /** Handlers that may run at once. */
  readonly #concurrency: number;
  /** Reply bytes (plus REPLY_COST each) queued for all clients. */
  #queuedTotal = 0;
  readonly #clients = new Map<string, ClientState>();
  /**
   * Clients with requests waiting, an open reply sender and room for replies, by
   * owner; both levels in round-robin order (a Map and Sets keep insertion order).
   * Owners first: a writer can name as many reply addresses as it has reply FIFOs,
   * but not make itself more users.
   */
  readonly #ready = new Map<number, Set<ClientState>>();
  readonly #closeController = new AbortController();
  readonly #busyPoll: number;
  /** The reply address of the last request, for decodeRpc(). */
  #lastAddress: KnownAddress | undefined;
  /** Cost of all waiting requests (see REQUEST_COST). */
  #waitingBytes = 0;
  #running = 0;
  #sweeper: NodeJS.Timeout;
  /** Stops listening for the transport's word that a client's connection is gone. */
  readonly #unwatch: (() => void) | undefined;
  /** Events passed on this second, by kind, and those held back. */
  #eventCounts = new Map<ServerEvent['kind'], { shown: number; held: number }>();

  /** @internal */
  constructor(
    receiver: FrameReceiver,
    handler: Handler<unknown, unknown>,
    transport: Transport,
    options: ServeOptions<unknown, unknown>,
    reopen?: () => Promise<FrameReceiver>,
  ) {
    super();
    this.#receiver = receiver;
    this.#reopen = reopen;
    this.#handler = handler;
    this.#transport = transport;
    this.#options = options;
    this.#codec = resolveCodec(options.codec, 'text');
    this.#busyPoll = checkBusyPoll(options.busyPoll);
    this.#limit = options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE;
    this.#maxWaiting = options.maxWaitingBytes ?? DEFAULT_MAX_WAITING_BYTES;
    this.#maxTotalWaiting = options.maxTotalWaitingBytes ?? DEFAULT_MAX_TOTAL_WAITING_BYTES;
    this.#maxQueuedReply = options.maxQueuedReplyBytes ?? DEFAULT_MAX_QUEUED_REPLY_BYTES;
    this.#maxTotalQueuedReply = options.maxTotalQueuedReplyBytes ?? DEFAULT_MAX_TOTAL_QUEUED_REPLY_BYTES;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#sweeper = setInterval(() => {
      this.#closeIdleClients();
      this.#flushEvents();
    }, IDLE_CLIENT_MS);
    this.#sweeper.unref();
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
    this.#unwatch = transport.onClientGone?.((address) => {
      const client = this.#clients.get(address);
      if (client) void this.#dropClient(client);
    });
    this.done = this.#loop();
  }

  get clients(): number {
    return this.#clients.size;
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        let frame: Buffer | undefined;
        try {
          const receiver = this.#receiver;
          // Waits without a frame in the promise where the transport can (see FrameReceiver.ready): one turn
          // of the microtask queue per frame, as receive() takes, so replies and handlers interleave as before.
          if (receiver.ready && receiver.tryReceive && (await receiver.ready())) frame = receiver.tryReceive();
          frame ??= await receiver.receive();
        } catch (err) {
          // Bytes that are not the transport's format (anyone who may write to the FIFO can send them): the
          // stream is out of step and the receiver has stopped. Start reading afresh rather than stop serving.
          if (!(err instanceof NpipeError && err.code === 'ERR_NPIPE_BAD_FRAME') || !this.#reopen || this.#closing) throw err;
          this.#event({ kind: 'bad-message', reason: `${err.message}; reading the request FIFO afresh`, code: err.code });
          this.#receiver = await this.#reopen();
          if (this.#closing) {
            await this.#receiver.close();
            break;
          }
          continue;
        }
        if (frame === undefined) break;
        keepPolling(this.#busyPoll);
        this.#dispatch(frame);
      }
    } finally {
      clearInterval(this.#sweeper);
      this.#unwatch?.();
      this.#flushEvents();
      const closing = new ClosedError('the server is closing');
      this.#closeController.abort(closing);
      for (const client of this.#clients.values()) {
        for (const cancel of client.handlers.values()) cancel.abort(closing);
        void this.#dropClient(client);
      }
    }
  }

  /** @internal The transport's drops, through the same rate limit as the server's own events. */
  report(event: ServerEvent): void {
    this.#event(event);
  }

  #event(event: ServerEvent): void {
    if (!this.#options.onEvent) return;
    let count = this.#eventCounts.get(event.kind);
    if (!count) this.#eventCounts.set(event.kind, (count = { shown: 0, held: 0 }));
    if (count.shown >= EVENTS_PER_SECOND) {
      count.held++;
      return;
    }
    count.shown++;
    this.#options.onEvent(event);
  }

  /** Once a second: says how many events were held back, and opens the next second. */
  #flushEvents(): void {
    for (const [kind, count] of this.#eventCounts) {
      if (count.held > 0) this.#options.onEvent?.({ kind, reason: `${count.held} more ${kind} events in the last second, not shown one by one` });
    }
    this.#eventCounts.clear();
  }

  #dispatch(frame: Buffer): void {
    let message: RpcMessage;
    try {
      message = decodeRpc(frame, this.#lastAddress);
    } catch (err) {
      this.#event({ kind: 'bad-message', reason: (err as Error).message });
      return;
    }
    if (!('replyTo' in message)) {
      this.#event({ kind: 'bad-message', reason: `unexpected message type ${message.type} on the request FIFO` });
      return;
    }
    if (message.type === CANCEL) {
      // Only for a client we know: a cancel never creates anything.
      const client = this.#clients.get(message.replyTo);
      if (client) this.#cancel(client, message.id);
      return;
    }
    const client = this.#client(message.replyTo);
    if (!client) return;
    if (this.#lastAddress?.text !== client.address) this.#lastAddress = { bytes: Buffer.from(client.address, 'utf8'), text: client.address };
    client.lastActive = Date.now();
    if (message.type === SIZE) {
      if (message.size > this.#limit) this.#tooLarge(client, message.id, message.size, 'request');
      return;
    }
    this.stats.requests++;
    if (frame.length > this.#limit) {
      // It arrived, so it came whole in one packet (the transport drops a larger message of several unread,
      // and the client announced that one with a SIZE): answer it from here.
      this.#tooLarge(client, message.id, frame.length, 'request');
      return;
    }
    const cost = message.payload.length + REQUEST_COST;
    if (client.jobBytes + cost > this.#maxWaiting || this.#waitingBytes + cost > this.#maxTotalWaiting) {
      this.stats.errors++;
      this.#errorReply(client, encodeReply(ERROR, message.id, client.jobBytes + cost > this.#maxWaiting ? BUSY_CLIENT : BUSY_ALL));
      return;
    }
    if (client.jobs.size === 0 && this.#ready.size === 0 && this.#servable(client) && this.#mayStart()) {
      // Nothing waits, from anyone, and a handler may start: this request is the one #next() would take, so it
      // starts now, without a turn through the queue and the round-robin sets (issue 18 #3: a round trip's cost).
      // Its payload is copied only where keeping it would keep more (compact()): a waiting request's is always
      // copied, so that the waiting bounds count what it holds; a handler may keep its request after answering
      // (the bytes codec hands it these very bytes), and a 1-byte request must not keep alive the 64 KiB of
      // frames a peer read with it (CANCELs for no client cost that peer nothing).
      this.#start(client, { id: message.id, payload: compact(message.payload), maxReply: message.maxReply });
      return;
    }
    // An id already waiting (only a client that reuses ids in flight sends one): the newer request takes its place.
    this.#unqueue(client, message.id);
    client.jobs.set(message.id, { id: message.id, payload: Buffer.from(message.payload), maxReply: message.maxReply });
    client.jobBytes += cost;
    this.#waitingBytes += cost;
    this.#schedule(client);
    this.#next();
  }

  #cancel(client: ClientState, id: number): void {
    const handler = client.handlers.get(id);
    if (handler) {
      this.stats.cancelled++;
      handler.abort(new ClosedError('the client cancelled this request'));
      return;
    }
    // Not started yet: take it out of the queue; its handler never runs.
    if (!this.#unqueue(client, id)) return;
    this.stats.cancelled++;
    this.#schedule(client);
  }

  /** Takes request `id` out of the client's queue, if it waits there; returns it. */
  #unqueue(client: ClientState, id: number): Job | undefined {
    const job = client.jobs.get(id);
    if (!job) return undefined;
    client.jobs.delete(id);
    const cost = job.payload.length + REQUEST_COST;
    client.jobBytes -= cost;
    this.#waitingBytes -= cost;
    return job;
  }

  #tooLarge(client: ClientState, id: number, size: number, what: 'request' | 'reply'): void {
    this.stats.errors++;
    const err = new FrameTooLargeError(size, this.#limit, what);
    this.#errorReply(client, encodeError(id, err.code, err.message, { size, limit: this.#limit, what }));
  }

  /**
   * An error reply the server makes up itself: dropped (and counted) rather than queued past ERROR_REPLY_QUEUE
   * bytes for the client, or past maxTotalQueuedReplyBytes for all clients unless the client has nothing queued
   * (so an honest client still hears ERR_NPIPE_BUSY; at most one such reply per client).
   */
  #errorReply(client: ClientState, reply: Buffer): void {
    const cost = reply.length + REPLY_COST;
    if (
      client.queuedBytes + cost > Math.min(this.#maxQueuedReply, ERROR_REPLY_QUEUE) ||
      (client.queuedBytes > 0 && this.#queuedTotal + cost > this.#maxTotalQueuedReply)
    ) {
      this.stats.repliesDropped++;
      this.#event({ kind: 'reply-dropped', client: client.address, reason: 'its replies are not being read; an error reply was dropped' });
      return;
    }
    this.#reply(client, reply);
  }

  /** Puts the client in the ready set if it has requests waiting, an open reply sender, and room for their replies. */
  #schedule(client: ClientState): void {
    let users = this.#ready.get(client.owner);
    if (client.jobs.size > 0 && this.#servable(client)) {
      if (!users) this.#ready.set(client.owner, (users = new Set()));
      users.add(client);
    } else if (users) {
      users.delete(client);
      if (users.size === 0) this.#ready.delete(client.owner);
    }
  }

  /**
   * The client behind a reply address, or undefined (counted, reported) when the
   * address fails the transport's check. Checked before anything is queued for it
   * (issue 15 #1: an address was checked only once its handler had run): the path
   * now (a FIFO in a reply folder, owned as it should be), then, once, by opening
   * its reply sender: the client's requests start only once that succeeded.
   */
  #client(address: string): ClientState | undefined {
    let client = this.#clients.get(address);
    if (client) return client;
    let owner = 0;
    try {
      owner = this.#transport.checkReplyAddress?.(address) ?? 0;
    } catch (err) {
      this.#refused(address, err);
      return undefined;
    }
    const now = Date.now();
    const state: ClientState = {
      address,
      owner,
      sender: Promise.resolve(undefined),
      ready: undefined,
      handlers: new Map(),
      jobs: new Map(),
      jobBytes: 0,
      queuedBytes: 0,
      lastActive: now,
      lastProgress: now,
      gone: false,
    };
    state.sender = this.#transport.openReply(address).then(
      (sender) => {
        if (state.gone) {
          void sender.close({ signal: AbortSignal.abort() }).catch(() => {});
          return undefined;
        }
        state.ready = sender;
        this.#schedule(state);
        this.#next();
        return sender;
      },
      (err: unknown) => {
        if (!state.gone) {
          // What waits for it is dropped, each request counted once: refused, or (client gone) a reply dropped.
          this.#refused(address, err, state.jobs.size);
          this.#waitingBytes -= state.jobBytes;
          state.jobs.clear();
          state.jobBytes = 0;
          void this.#dropClient(state);
        }
        return undefined;
      },
    );
    this.#clients.set(address, state);
    return (client = state);
  }

  /** `requests` requests dropped because their reply address failed a check (or, for no reader, their client is gone). */
  #refused(address: string, err: unknown, requests = 1): void {
    const code = err instanceof NpipeError ? err.code : '';
    if (code === 'ERR_NPIPE_NO_READER' || code === 'ERR_NPIPE_NOT_FOUND') {
      // A client that has gone (or never was): nobody to tell.
      this.stats.repliesDropped += requests;
      this.#event({ kind: 'reply-dropped', client: address, reason: (err as Error).message });
      return;
    }
    this.stats.refused += requests;
    this.#event({ kind: 'refused', client: address, reason: err instanceof Error ? err.message : String(err), ...(code ? { code } : {}) });
  }

  /** Whether `client`'s requests may be served: it is not gone, its reply sender is open, and its replies have room. */
  #servable(client: ClientState): boolean {
    return !client.gone && client.ready !== undefined && client.queuedBytes < this.#maxQueuedReply;
  }

  /**
   * Whether a handler may start now: one is free, and the total reply bound is not reached (past it, its
   * reply would have to be queued too: issue 15 #1).
   */
  #mayStart(): boolean {
    return this.#running < this.#concurrency && this.#queuedTotal < this.#maxTotalQueuedReply;
  }

  #next(): void {
    while (this.#ready.size > 0 && this.#mayStart()) {
      const [owner, users] = this.#ready.entries().next().value!;
      const client: ClientState = users.values().next().value!;
      // Both to the back of their round.
      this.#ready.delete(owner);
      users.delete(client);
      if (users.size > 0) this.#ready.set(owner, users);
      const job = this.#unqueue(client, client.jobs.keys().next().value!)!;
      this.#schedule(client);
      this.#start(client, job);
    }
  }

  /** Runs a job's handler, counted in #running until its reply is made; then the next job may start. */
  #start(client: ClientState, job: Job): void {
    this.#running++;
    const running = this.#run(client, job);
    if (!running) {
      this.#running--; // answered at once
      return;
    }
    void running.finally(() => {
      this.#running--;
      this.#next();
    });
  }

  /**
   * Runs the handler of one job and replies. Returns a promise only while the
   * handler's answer is still to come; a handler that answers at once is replied
   * to before this returns (issue 18 #3).
   */
  #run(client: ClientState, job: Job): Promise<void> | undefined {
    const older = client.handlers.get(job.id);
    if (older) {
      // A client that reuses an id in flight: the newer request takes its place, as it does in the queue. The
      // older handler's signal aborts and its answer is not sent. Left running outside the map, it could not be
      // cancelled nor aborted when its client goes, and a handler that ends only on its signal would hold its
      // slot for ever: a client could take every slot that way.
      client.handlers.delete(job.id);
      this.stats.cancelled++;
      older.abort(new ClosedError('a newer request from this client took its id'));
    }
    const cancel = new Cancel();
    const outcome = runHandler(this.#handler, this.#codec, job.payload, cancel, client.address);
    if (outcome instanceof Promise) {
      // Only a handler still running can be cancelled, or aborted when its client goes: a handler that
      // answered at once is never in the map (nothing else ran meanwhile).
      client.handlers.set(job.id, cancel);
      return outcome.then((settled) => this.#answer(client, job, cancel, settled));
    }
    this.#answer(client, job, cancel, outcome);
    return undefined;
  }

  #answer(client: ClientState, { id, maxReply }: Job, cancel: Cancel, outcome: Outcome): void {
    // Its own entry only: a newer request under the same id may have taken its place (see #run).
    if (client.handlers.get(id) === cancel) client.handlers.delete(id);
    // Cancelled by the client: it no longer waits for an answer.
    if (cancel.aborted && !this.#closeController.signal.aborted) return;
    const limit = maxReply > 0 ? Math.min(maxReply, this.#limit) : this.#limit;
    if (!outcome.ok) {
      this.stats.errors++;
      this.#reply(client, encodeErrorWithin(limit, id, outcome.code, outcome.message, outcome.detail));
      return;
    }
    const reply = encodeReply(REPLY, id, outcome.payload);
    if (reply.length > limit) {
      // Sent, the client's reader would drop it and the client wait for ever (issue 15 #2).
      this.stats.errors++;
      const err = new FrameTooLargeError(reply.length, limit, 'reply');
      this.#reply(client, encodeError(id, err.code, err.message, { size: reply.length, limit, what: 'reply' }));
      return;
    }
    this.stats.replies++;
    this.#reply(client, reply);
  }

  #reply(client: ClientState, reply: Buffer): void {
    if (client.gone) {
      this.stats.repliesDropped++;
      this.#event({ kind: 'reply-dropped', client: client.address, reason: 'the client is gone' });
      return;
    }
    if (client.queuedBytes === 0) client.lastProgress = Date.now();
    const cost = reply.length + REPLY_COST;
    client.queuedBytes += cost;
    this.#queuedTotal += cost;
    client.lastActive = Date.now();
    this.#schedule(client);
    const sending = client.ready ? client.ready.send(reply) : client.sender.then((sender) => {
      if (!sender) throw new ClosedError('the client is gone');
      return sender.send(reply);
    });
    sending.then(
      () => {
        keepPolling(this.#busyPoll); // the client's next request is likely to follow at once
        client.queuedBytes -= cost;
        this.#queuedTotal -= cost;
        client.lastProgress = Date.now();
        this.#schedule(client);
        this.#next();
      },
      (err: unknown) => {
        client.queuedBytes -= cost;
        this.#queuedTotal -= cost;
        this.stats.repliesDropped++;
        // Once per client, not once per queued reply: thousands of replies may fail together.
        if (client.gone) {
          this.#next();
          return;
        }
        this.#event({ kind: 'reply-dropped', client: client.address, reason: (err as Error).message });
        if (err instanceof NpipeError && err.code === 'ERR_NPIPE_NO_READER') {
          // Opening again finds no reader, and the transport then removes the FIFO if its client is dead.
          void this.#transport.openReply(client.address).then((s) => s.close({ signal: AbortSignal.abort() }), () => {});
        }
        void this.#dropClient(client);
        this.#next();
      },
    );
  }

  /** The client is gone (or refused): stop its handlers, close its sender, forget it. */
  async #dropClient(client: ClientState): Promise<void> {
    client.gone = true;
    const users = this.#ready.get(client.owner);
    if (users?.delete(client) && users.size === 0) this.#ready.delete(client.owner);
    if (client.jobs.size > 0) {
      this.stats.repliesDropped += client.jobs.size;
      this.#waitingBytes -= client.jobBytes;
      client.jobs.clear();
      client.jobBytes = 0;
    }
    if (this.#clients.get(client.address) === client) this.#clients.delete(client.address);
    for (const handler of client.handlers.values()) {
      if (handler.aborted) continue; // cancelled by its client (counted then), or the server is closing (its reply is counted)
      // Its reply will never be sent: counted here, as a reply to a client that is gone.
      this.stats.repliesDropped++;
      handler.abort(new ClosedError('the client went away'));
    }
    const sender = await client.sender;
    await sender?.close({ signal: AbortSignal.abort() }).catch(() => {});
  }

  /** Closes the reply senders of clients with nothing in progress: a new request reopens it. */
  #closeIdleClients(): void {
    const now = Date.now();
    const stuckAfter = this.#options.stuckAfter ?? DEFAULT_STUCK_AFTER_MS;
    for (const client of this.#clients.values()) {
      if (client.queuedBytes > 0 && now - client.lastProgress > stuckAfter) {
        this.#event({ kind: 'reply-dropped', client: client.address, reason: `the client read none of its replies for ${stuckAfter} ms; dropped` });
        void this.#dropClient(client);
      } else if (client.handlers.size === 0 && client.jobs.size === 0 && client.queuedBytes === 0 && now - client.lastActive > IDLE_CLIENT_MS) {
        void this.#dropClient(client);
      }
    }
  }

  /**
   * Stops taking requests, aborts running handlers (their signals), and closes the
   * request endpoint (a FIFO stays on disk). Idempotent; resolves when done.
   */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#receiver.close();
    await this.done;
  }
}

/**
 * Serves requests arriving on `path` over `transport` (docs/RPC.md). The arguments
 * are checked by the caller (api.ts serve()).
 */
export async function serveFrames(
  transport: Transport,
  path: string,
  handler: Handler<unknown, unknown>,
  options: ServeOptions<unknown, unknown>,
): Promise<Server> {
  let server: FrameServer | undefined;
  const listen = () =>
    transport.listen(path, {
      // A request too large, or cut by a client killed mid-message: it never reaches a handler.
      onDrop: (d) => {
        const event: ServerEvent = { kind: 'frame-dropped', reason: `${d.reason}, ${d.bytes} bytes (pid ${d.pid || 'unknown'})` };
        if (server) server.report(event);
        else options.onEvent?.(event);
      },
    });
  const receiver = await listen();
  server = new FrameServer(receiver, handler, transport, options, listen);
  return server;
}
