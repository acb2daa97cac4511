/**
 * Request/reply's view of a Windows pipe: the connection's two directions, no
 * reply folders. A client's connection starts with a hello that names a secret
 * token (16 random bytes); its requests name that token as their reply address,
 * and the server writes their replies back on the connection that said it. The
 * frames of rpc/frame-server.ts and rpc/frame-client.ts are unchanged.
 *
 * The server holds each connection to its hello's token: a message naming any
 * other reply address drops the connection, so no client can have replies sent
 * to, or cancel the requests of, a connection not its own (and a token that
 * shows up in a server's log is of no use to anyone). One transport per client
 * (createReplyEndpoint, then connect) or per server (listen).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { InvalidArgumentError, NoReaderError, ServerGoneError, UnsafeFifoError } from '../../errors.js';
import { createFraming, type Framing } from '../../framing/index.js';
import { DEFAULT_RPC_MAX_MESSAGE } from '../../rpc/limits.js';
import { namesReplyAddress } from '../../rpc/protocol.js';
import { QueueReceiver } from '../../transport/queue-receiver.js';
import type { ConnectOptions, FrameSender, ListenOptions, ReplyEndpoint, Transport } from '../../transport/types.js';
import { openWinPipeFrameReceiver, type WinPipeFrameReceiver } from './receiver.js';
import { borrowWinPipeSocket, openWinPipeFrameSender } from './sender.js';

/** What a hello says before its token; the version lets a later protocol refuse an older peer clearly. */
const HELLO = 'npipe-hello/1 ';
const TOKEN = /^[0-9a-f]{32}$/;
/** Tokens of connections that closed, remembered so that their queued requests count as "client gone", not as refused. */
const REMEMBER_GONE = 4096;

export interface WinPipeTransportOptions {
  /** Largest request or reply, in bytes (default 1 MiB). */
  maxMessageSize?: number;
  /** Server: one other users may connect to (the pipe's DACL grants Everyone read and write). Client: may talk to such a server of another user. */
  allowShared?: boolean;
}

export class WinPipeTransport implements Transport {
  readonly #framing: Framing;
  readonly #options: WinPipeTransportOptions;
  /** Server: each greeted connection, by its token. */
  readonly #peers = new Map<string, Socket>();
  readonly #gone = new Set<string>();
  /** Client: the endpoint connect() reads replies into. */
  #endpoint: ReplyQueue | undefined;
  readonly #serverGone = new Set<() => void>();
  readonly #clientGone = new Set<(token: string) => void>();

  constructor(options: WinPipeTransportOptions = {}) {
    this.#options = options;
    this.#framing = createFraming('frames', { maxMessageSize: options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE });
  }

  listen(name: string, options: ListenOptions = {}): Promise<WinPipeFrameReceiver> {
    return openWinPipeFrameReceiver(name, this.#framing, {
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
      allowShared: this.#options.allowShared === true,
      pipeKey: true,
      greet: (first, socket) => this.#greet(first, socket),
    });
  }

  /**
   * A connection's hello: its token is taken unless malformed or in use by a live
   * connection, and each later message of the connection must name it as its
   * reply address. When the connection ends the server is told (onClientGone).
   */
  #greet(first: Buffer, socket: Socket): ((message: Buffer) => boolean) | undefined {
    const text = first.toString('latin1');
    if (!text.startsWith(HELLO)) return undefined;
    const token = text.slice(HELLO.length);
    if (!TOKEN.test(token) || this.#peers.has(token)) return undefined;
    // A token whose connection has ended may come back (its client reconnecting): the server forgot it then.
    this.#gone.delete(token);
    this.#peers.set(token, socket);
    socket.once('close', () => {
      this.#peers.delete(token);
      this.#gone.add(token);
      if (this.#gone.size > REMEMBER_GONE) this.#gone.delete(this.#gone.values().next().value!);
      for (const f of this.#clientGone) f(token);
    });
    const mine = Buffer.from(token, 'latin1');
    return (message) => namesReplyAddress(message, mine);
  }

  checkReplyAddress(token: string): number {
    this.#peer(token);
    // The peer's user is not known here: all clients share one round-robin.
    return 0;
  }

  #peer(token: string): Socket {
    const socket = this.#peers.get(token);
    if (socket && !socket.destroyed) return socket;
    if (socket || this.#gone.has(token)) throw new NoReaderError('the client behind this connection is gone');
    throw new UnsafeFifoError('the reply address names no connection to this server (a request must name the token of its own hello)');
  }

  async openReply(token: string): Promise<FrameSender> {
    return borrowWinPipeSocket(this.#peer(token), token, this.#framing);
  }

  async createReplyEndpoint(): Promise<ReplyEndpoint> {
    const token = randomBytes(16).toString('hex');
    const queue = new ReplyQueue(this.#framing, token);
    this.#endpoint = queue;
    return { address: token, receiver: queue, close: () => queue.close() };
  }

  /** Connects to the server on `name`; every connection (the first, and with `wait` each next one) starts with this client's hello. */
  async connect(name: string, options: ConnectOptions = {}): Promise<FrameSender> {
    const endpoint = this.#endpoint;
    if (!endpoint) throw new InvalidArgumentError('createReplyEndpoint() first: replies come back on the connection');
    const token = endpoint.token;
    try {
      return await openWinPipeFrameSender(name, this.#framing, {
        waitForReader: options.wait === true,
        // Without wait, a server that is not there is an error now, not a wait.
        timeout: options.wait ? options.timeout ?? 2 ** 31 - 1 : 0,
        ...(options.signal ? { signal: options.signal } : {}),
        pipeKey: true,
        ...(this.#options.allowShared === true ? { allowShared: true } : {}),
        greeting: Buffer.concat([...this.#framing.encode(Buffer.from(HELLO + token, 'latin1'))]),
        onConnect: (socket) => endpoint.read(socket),
        onLost: () => {
          for (const f of this.#serverGone) f();
        },
      });
    } catch (err) {
      if (err instanceof NoReaderError && !options.wait) {
        throw new ServerGoneError(`no server is listening on ${name}; start it (npipe serve ${name} ...), or wait for it (waitForServer)`, { cause: err });
      }
      throw err;
    }
  }

  onClientGone(listener: (token: string) => void): () => void {
    this.#clientGone.add(listener);
    return () => this.#clientGone.delete(listener);
  }

  onServerGone(listener: () => void): () => void {
    this.#serverGone.add(listener);
    return () => this.#serverGone.delete(listener);
  }
}

/** A client's replies: read from each connection its sender makes, in turn. */
class ReplyQueue extends QueueReceiver {
  readonly token: string;
  readonly #framing: Framing;

  constructor(framing: Framing, token: string) {
    super(framing.maxMessageSize, undefined, false);
    this.#framing = framing;
    this.token = token;
  }

  read(socket: Socket): void {
    // One reply in progress at a time (the server writes each whole): whoever listens on the name cannot make us reserve more.
    const decoder = this.#framing.createDecoder({ onDrop: (info) => this.report(info), maxPartialBytes: this.#framing.maxMessageSize });
    const emit = (frame: Buffer) => this.deliver(Buffer.from(frame));
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      try {
        decoder.push(chunk, emit);
      } catch {
        // Not frames: this is no npipe server. Its connection is dropped; the sender sees it go.
        socket.destroy();
      }
    });
  }

  protected shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
