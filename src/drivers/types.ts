/**
 * The seam between npipe and its media. A driver serves one kind of address (a
 * FIFO path, a nats:// URL, ...): it opens frame senders and receivers, serves and
 * connects request/reply, and declares what it can do beyond that. Everything
 * above (api.ts, the CLI) resolves an address to its driver once, through
 * registry.ts, and then asks the driver's capabilities, never the address's scheme
 * (nats.js: a transport registers itself; the protocol never asks which one it
 * runs on).
 *
 * Adding a transport: a folder under drivers/ whose index.ts exports `driver`, one
 * line in registry.ts, and the contract suite (test/contract.test.ts) run over it.
 */
import type { DropInfo, Framing } from '../framing/index.js';
import type { FramePublisher, FrameReceiver, FrameSender, SlowPolicy } from '../transport/types.js';
import type { Handler } from '../rpc/handler.js';
import type { Client, ConnectOptions, Server, ServeOptions } from '../rpc/types.js';
import type { FifoReceiverOptions, FifoSenderOptions } from './fifo/options.js';
import type { Delivery } from './nats/url.js';
import type { NatsStatus } from './nats/stat.js';
import type { FifoStatus } from '../fifo/inspect.js';
import type { NatsOptions } from './nats/options.js';

/** What `npipe stat` shows of an address: one shape per kind, told apart by `type`. */
export type AddressStatus = FifoStatus | NatsStatus;

/** What a driver is given to look at an address (NATS: how long to try the server, and the connection options). */
export interface InspectOptions extends MediumOptions {
  timeout?: number;
  signal?: AbortSignal;
}

/**
 * Options of one medium, given to every driver with every call: each uses its own
 * and ignores the others' (one options object may serve FIFO paths and URLs alike).
 */
export interface MediumOptions {
  /** nats:// only: the server for an address that names none, credentials and TLS (drivers/nats/options.ts). */
  nats?: NatsOptions;
}

/** What every driver is given to open a sender (each takes the options that mean something for its medium). */
export interface DriverSenderOptions extends FifoSenderOptions, MediumOptions {
  maxMessageSize?: number;
  /**
   * shm:// only: microseconds to spin (the event loop turning, never blocked) on a
   * full ring before sleeping until the receiver frees room; 0 (default): sleep at once.
   */
  busyPoll?: number;
  /** shm:// only: bytes of this sender's ring, a power of two from 64 KiB to 1 GiB (default 8 MiB). */
  ringSize?: number;
  /** nats:// only: `core` or `jetstream`; overrides the URL's `?delivery=`. */
  delivery?: Delivery;
}

export interface DriverReceiverOptions extends FifoReceiverOptions, MediumOptions {
  maxMessageSize?: number;
  /**
   * shm:// only: microseconds to spin (the event loop turning, never blocked) on
   * empty rings before sleeping until a sender's doorbell; 0 (default): sleep at once.
   */
  busyPoll?: number;
  delivery?: Delivery;
  /**
   * Core NATS only: the queue group this receiver joins (receivers in one group share
   * the messages; `nats sub --queue NAME`); overrides the URL's `?group=` (default `npipe`).
   */
  group?: string;
  /**
   * Core NATS only: true joins no group, so this receiver gets every message, as
   * `nats sub` does (`?fan-out=true`); false: the URL's group. Over JetStream both
   * are refused (ERR_NPIPE_INVALID_ARG): listeners share the stream's one consumer.
   */
  fanOut?: boolean;
  /** Core NATS only: bytes held for a receiver that is not keeping up before new messages are dropped. */
  maxQueuedBytes?: number;
  onDrop?: (info: DropInfo) => void;
}

export interface Driver {
  /** Short name, for messages ('fifo', 'nats'). */
  readonly name: string;
  /** What the user calls such an address, for messages: 'a FIFO path', 'a NATS URL'. */
  readonly noun: string;
  readonly capabilities: Capabilities;
  openSender(address: string, framing: Framing, options: DriverSenderOptions): Promise<FrameSender>;
  openReceiver(address: string, framing: Framing, options: DriverReceiverOptions): Promise<FrameReceiver>;
  /** Checked by api.ts first: `handler` is a function, `concurrency` and `busyPoll` are valid, `signal` is not aborted. */
  serve(address: string, handler: Handler<unknown, unknown>, options: ServeOptions<unknown, unknown> & MediumOptions): Promise<Server>;
  connect(address: string, options: ConnectOptions<unknown, unknown> & MediumOptions): Promise<Client<unknown, unknown>>;
}

/**
 * What a driver can do beyond sending and receiving frames. The CLI's fast paths
 * are capabilities: a command takes one only where the address's driver has it,
 * so a new transport never runs another medium's code by default.
 */
export interface Capabilities {
  /**
   * The format is on the wire (FIFO): messages are framed with it, so a message
   * the format cannot carry is refused before any is sent, and a lines stream can
   * be passed through whole. false: each message is one message of the medium
   * (NATS) and the format only says how the CLI splits its input.
   */
  readonly wireFormat: boolean;
  /**
   * `waitForReader` waits for a reader process to appear (FIFO). false: there is
   * no reader to wait for; it waits for the medium itself (NATS: the server).
   */
  readonly waitsForReader: boolean;
  /**
   * Deliveries can be acknowledged or given back (JetStream): a bridge from such
   * an address takes one message at a time, so that one is acknowledged only once
   * it is delivered on the other side.
   */
  readonly acknowledges: boolean;
  /**
   * A raw byte stream is cut into messages of at most this many bytes (NATS: each
   * piece is one NATS message). Undefined: the medium is a byte stream itself.
   */
  readonly rawPiece?: number;
  /**
   * The CLI options (long names) that mean something for this medium beyond the
   * common ones; given with an address of another medium they are refused, not
   * ignored.
   */
  readonly cliOptions: readonly string[];
  /** Raw byte streams moved by splice(2), never through this process (Linux FIFOs). */
  readonly splice?: SpliceLane;
  /**
   * Publish/subscribe on a topic (issue 20): every subscriber gets every message.
   * FIFO: a topic is a folder of the subscribers' FIFOs.
   */
  readonly pubsub?: PubSub;
  /**
   * What the address is and what waits in it, looked at without changing it: no
   * FIFO opened as a reader or writer, no stream or consumer made (`npipe stat`).
   */
  readonly inspect?: (address: string, options: InspectOptions) => Promise<AddressStatus>;
  /** The streams the medium keeps for npipe (JetStream), to list and remove (`npipe streams`). */
  readonly streams?: StreamAdmin;
  /** Exactly N messages taken from the medium, the rest left for the next reader (`npipe listen --count`). */
  readonly countedReader?: (address: string, options: CountedReaderOptions) => Promise<CountedReader>;
}

/** One stream of the medium's, as `npipe streams` shows it. */
export interface StreamSummary {
  name: string;
  subjects: string[];
  messages: number;
  bytes: number;
  consumers: number;
  /** Made by npipe (its description, or the NPIPE_ name of older npipes). */
  npipe: boolean;
}

/**
 * The streams behind a medium's stored delivery (JetStream), for `npipe streams`.
 * `address` names the server only (nats://host:port, or nats:/// for the one in
 * the connection options).
 */
export interface StreamAdmin {
  /** Every stream on the server, npipe's and others. */
  list(address: string, options: MediumOptions): Promise<StreamSummary[]>;
  /**
   * Deletes the stream `name` (its messages and consumers with it). A stream npipe
   * did not make is refused (ERR_NPIPE_INVALID_ARG) unless `force`; a missing one is ERR_NPIPE_NOT_FOUND.
   */
  remove(address: string, name: string, options: MediumOptions & { force?: boolean }): Promise<void>;
}

export interface SpliceLane {
  /** Whether splicing works here now (Linux, koffi loaded, not turned off with NPIPE_SPLICE=0). */
  available(): boolean;
  /**
   * The bytes of regular file `fd` into `address`; resolves with the bytes sent.
   * `onOpen`: called once `address` is open (a reader is there), before any byte moves.
   */
  sendFile(fd: number, address: string, options: DriverSenderOptions & { onOpen?: () => void; progress?: Progress }): Promise<number>;
  /**
   * The byte stream arriving on `address` into `outFd` (`output` is a stream over the
   * same descriptor, for the pieces that pass through this process); resolves with
   * the bytes received, at end of file or when `signal` aborts.
   * `progress`, in both: kept at the bytes moved so far (the event loop gets a turn at least every 20 ms).
   */
  receiveInto(address: string, outFd: number, output: NodeJS.WritableStream, options: DriverReceiverOptions & { idleTimeout?: number; progress?: Progress }): Promise<number>;
}

export interface PubSub {
  openPublisher(topic: string, framing: Framing, options: DriverPublisherOptions): Promise<FramePublisher>;
  subscribe(topic: string, framing: Framing, options: DriverSubscriberOptions): Promise<FrameReceiver>;
}

/** What a driver is given to open a publisher. */
export interface DriverPublisherOptions extends MediumOptions {
  maxMessageSize?: number;
  /** For subscribers that name no policy: block (default), drop or disconnect. */
  slow?: SlowPolicy;
  /** Bytes queued for one drop or disconnect subscriber before it is skipped or let go. */
  maxQueuedBytes?: number;
}

/** What a driver is given to subscribe. */
export interface DriverSubscriberOptions extends MediumOptions {
  maxMessageSize?: number;
  /** NATS: bytes held for a subscriber that is not keeping up before messages are dropped (missed). */
  maxQueuedBytes?: number;
  /** What publishers do when this subscriber does not keep up. */
  slow?: SlowPolicy;
  maxPartialBytes?: number;
  onDrop?: (info: DropInfo) => void;
  /** Messages a publisher did not deliver to this subscriber (it fell behind), as they are noticed. */
  onMissed?: (info: { publisher: string; messages: number }) => void;
}

/** A count the lanes keep at the bytes moved so far, as they move; read by whoever shows progress. */
export interface Progress {
  bytes: number;
}

export interface CountedReaderOptions {
  format: string;
  maxMessageSize: number;
  maxPartialBytes?: number;
  create: boolean;
  keepOpen: boolean;
  allowShared: boolean;
  mode?: number;
  pipeSize?: number;
  onDrop?: (info: DropInfo) => void;
}

/** A reader that takes whole messages out of the medium one at a time, and not a byte more. */
export interface CountedReader {
  /** Called before the reader waits for the medium (the CLI flushes its output then). */
  set beforeWait(f: (() => Promise<void>) | undefined);
  /** A message already read, or undefined; never waits. */
  tryNext(): Buffer | undefined;
  /** The next message; undefined at the end of the stream or when `signal` aborts. At most `wanted` are read ahead. */
  next(signal: AbortSignal | undefined, wanted: number): Promise<Buffer | undefined>;
  /** lines: whole lines, as they are, at most `wanted`; undefined at the end or on abort. */
  nextLines(signal: AbortSignal | undefined, wanted: number): Promise<{ bytes: Buffer; lines: number } | undefined>;
  /** lines: the start of a line whose "\n" had not come when the reader stopped. */
  unfinishedLine(): Buffer | undefined;
  /** Bytes of a message cut by a stop: read, not deliverable. */
  readonly cutBytes: number;
  close(): void;
}
