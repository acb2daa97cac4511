/**
 * The Windows named pipe receiver: a pipe server (net.createServer listening on
 * `\\.\pipe\<name>`) that takes any number of writer connections. Unlike a FIFO,
 * each writer has its own connection, so each gets its own decoder: messages of
 * several writers never interleave in any format, and a writer that leaves
 * mid-message cuts only its own message (counted in `dropped`). Whole messages of
 * all connections go into one queue (transport/queue-receiver.ts, as NATS's do),
 * handed out one receive() at a time.
 *
 * What Node's pipe server does on Windows (libuv, src/win/pipe.c):
 * - verified under Wine (wine64 + Windows Node 20.20.2): listen/connect across
 *   processes; many writers at once; a writer killed mid-message is seen as the
 *   end of its connection; a second listen() on the same name SUCCEEDS (Wine does
 *   not enforce FILE_FLAG_FIRST_PIPE_INSTANCE), so two receivers can share a
 *   name there and writers are spread between them.
 * - to verify on Windows: that a second listen() fails with EADDRINUSE (libuv asks
 *   for FILE_FLAG_FIRST_PIPE_INSTANCE); that `readableAll/writableAll: false`
 *   (what we pass) leaves the default DACL, open to the creator, SYSTEM and
 *   administrators only; that remote clients are refused (libuv creates the
 *   instances without PIPE_REJECT_REMOTE_CLIENTS, so a pipe server is reachable
 *   over SMB by users the DACL admits; the default DACL admits no remote
 *   anonymous user, but this has not been checked on a real network).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { BadFrameError, NpipeError, SystemError } from '../../errors.js';
import type { DropInfo, Framing } from '../../framing/index.js';
import { QueueReceiver } from '../../transport/queue-receiver.js';
import { pipeError } from './failures.js';
import { ACK, KEY_CHARS, PROOF_TIMEOUT_MS, createKey, keyMatches, keyPath } from './pipe-key.js';

/** The receiver stops reading every connection while it holds this many bytes not yet received (as a FIFO receiver does). */
export const RECEIVE_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Connections still to send the pipe's key, at most: past it the oldest is refused
 * at once rather than after PROOF_TIMEOUT_MS. Those are the clients the key keeps
 * out (other machines, other users), and each one held costs a handle and memory:
 * without a bound, 5,000 silent connections were all held (4,790 open descriptors
 * over a Unix socket, RSS up 35 MiB), and on Windows no descriptor limit stops more.
 * An npipe client sends its key as soon as it connects, so it is rarely the oldest.
 */
export const MAX_PROVING = 1024;

/**
 * The most bytes the writers' decoders hold of messages still incomplete, all
 * connections together: the bound a FIFO's one frames decoder has
 * (max(4 x maxMessageSize, 256 MiB)). Each connection holds at most one message in
 * progress (it is one writer); a connection that would take the total past this is
 * dropped (`memory`). Without it, every connection could hold 256 MiB (frames
 * packets of many writer ids, each announcing a large message).
 */
export function partialBudget(maxMessageSize: number): number {
  return Math.max(4 * maxMessageSize, 256 * 1024 * 1024);
}

export interface WinPipeReceiverOptions {
  /** false: the stream ends once the last writer disconnects (after at least one came). Default true: wait for writers for ever. */
  keepOpen?: boolean;
  onDrop?: (info: DropInfo) => void;
  signal?: AbortSignal;
  /**
   * Let other users connect and write (the pipe's DACL then grants Everyone read
   * and write, libuv's uv_pipe_chmod). Default false: Windows' default DACL, which
   * lets only the creator, SYSTEM and administrators write.
   */
  allowShared?: boolean;
  /**
   * Each connection's first message, taken instead of delivered (request/reply's
   * hello, rpc-transport.ts). Returns what admits each later message of that
   * connection, or undefined to drop the connection; a message not admitted drops
   * it too. Either is reported as `corrupt`.
   */
  greet?: (first: Buffer, socket: Socket) => ((message: Buffer) => boolean) | undefined;
  /**
   * Write a key file for this pipe and take only connections that send its key
   * first (pipe-key.ts): clients on other machines, and without `allowShared`
   * other users, are refused. The driver always asks for it; off by default here
   * for tests of the rest.
   */
  pipeKey?: boolean;
  /** Connections still to send the key, at most (default MAX_PROVING); past it the oldest is refused. */
  maxProving?: number;
}

/**
 * Listens on `name` (already normalised, `\\.\pipe\<name>`).
 * @throws `signal.reason` when aborted; ERR_NPIPE_PERMISSION or ERR_NPIPE_SYSTEM (another receiver on the name, on Windows) when listening fails.
 */
export async function openWinPipeFrameReceiver(name: string, framing: Framing, options: WinPipeReceiverOptions = {}): Promise<WinPipeFrameReceiver> {
  const { signal } = options;
  if (signal?.aborted) throw signal.reason;
  const server = createServer();
  const shared = options.allowShared === true;
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      server.close();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    server.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(pipeError(err, name, 'listening on'));
    });
    server.listen({ path: name, readableAll: shared, writableAll: shared }, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
  let key: ReturnType<typeof createKey> | undefined;
  if (options.pipeKey === true) {
    try {
      key = createKey(name, shared);
    } catch (err) {
      server.close();
      throw new SystemError(`could not write the key file of ${name} (${keyPath(name, shared)}): ${(err as Error).message}`, { cause: err });
    }
  }
  return new WinPipeFrameReceiver(server, name, framing, options, key);
}

export class WinPipeFrameReceiver extends QueueReceiver {
  readonly name: string;
  readonly framing: Framing;
  #server: Server;
  #connections = new Set<Socket>();
  /** Connections that have not sent the pipe's key yet, oldest first, and how each is refused. */
  #proving = new Map<Socket, () => void>();
  readonly #maxProving: number;
  #hadWriter = false;
  #keepOpen: boolean;
  readonly #greet: WinPipeReceiverOptions['greet'];
  #paused = false;
  /** What the connections' decoders hold of incomplete messages (bufferedBytes counts it too), and its bound (partialBudget). */
  #partialBytes = 0;
  readonly #partialBudget: number;
  /** No more writers are taken: closed, or (keepOpen: false) the last one left. */
  #stopped = false;

  /** The pipe's key, when connections must prove they may write (pipe-key.ts). */
  readonly #key: ReturnType<typeof createKey> | undefined;

  constructor(server: Server, name: string, framing: Framing, options: WinPipeReceiverOptions, key?: ReturnType<typeof createKey>) {
    super(framing.maxMessageSize, options.onDrop, framing.byteStream);
    this.#server = server;
    this.name = name;
    this.framing = framing;
    this.#keepOpen = options.keepOpen !== false;
    this.#greet = options.greet;
    this.#key = key;
    this.#partialBudget = partialBudget(framing.maxMessageSize);
    this.#maxProving = options.maxProving ?? MAX_PROVING;
    server.on('connection', (socket) => this.#accept(socket));
    // After listening, a server error is not one a receive() can act on: the queue still drains, then ends.
    server.on('error', () => this.#stop());
  }

  /** Messages queued and not yet taken, and what the writers' decoders hold of messages still incomplete. */
  override get bufferedBytes(): number {
    return super.bufferedBytes + this.#partialBytes;
  }

  #accept(socket: Socket): void {
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    this.#connections.add(socket);
    const key = this.#key?.key;
    let proof: Buffer | undefined = key ? Buffer.alloc(0) : undefined;
    /** Drops the connection for want of the key (after PROOF_TIMEOUT_MS, a wrong key, or too many waiting). */
    const refuse = () => {
      this.report({ writerId: 0, reason: 'refused', bytes: proof?.length ?? 0, pid: 0 });
      socket.destroy();
    };
    const proofTimer = key ? setTimeout(refuse, PROOF_TIMEOUT_MS) : undefined;
    // Only a connection that proved it may write is a writer (keepOpen: false ends after the last one).
    if (!key) this.#hadWriter = true;
    // One writer per connection: one message in progress at most (frames would otherwise take one per writer id, up to 256 MiB).
    const decoder = this.framing.createDecoder({ onDrop: (info) => this.report(info), maxPartialBytes: this.framing.maxMessageSize });
    /** What this connection's decoder holds, as counted in #partialBytes. */
    let held = 0;
    const recount = () => {
      const now = decoder.pendingBytes;
      this.#partialBytes += now - held;
      held = now;
    };
    // A connection still to send its key is read even while writers are paused: its key is small, and waiting would time it out.
    if (key) {
      this.#proving.set(socket, refuse);
      if (this.#proving.size > this.#maxProving) {
        const [oldest, refuseOldest] = this.#proving.entries().next().value!;
        this.#proving.delete(oldest);
        refuseOldest();
      }
    } else if (this.#paused) socket.pause();
    const greet = this.#greet;
    let admit: ((message: Buffer) => boolean) | undefined;
    const emit = (view: Buffer) => {
      if (greet) {
        if (admit === undefined) {
          admit = greet(view, socket);
          if (admit) return;
          throw new BadFrameError('the connection did not start with the hello this pipe expects');
        }
        if (!admit(view)) throw new BadFrameError('a message this connection may not send');
      }
      // The decoder may hand out views into the chunk (a new Buffer per 'data', never reused). A small
      // message is copied out, so that a queue of them does not hold whole chunks (up to 64 KiB each).
      this.deliver(view.length * 4 < view.buffer.byteLength ? Buffer.from(view) : view);
    };
    let done = false;
    // The writer is gone (end, error, or killed): what its decoder holds of a message is cut.
    const finishWriter = (cut: boolean) => {
      if (done) return;
      done = true;
      if (proof) return; // refused, or gone before its key: it sent no message
      const pending = decoder.pendingBytes;
      try {
        decoder.end(emit); // frames reports its own cut messages through onDrop; lines emits an unterminated last line
      } catch {
        if (cut || pending > 0) this.report({ writerId: 0, reason: 'writer-died', bytes: pending, pid: 0 });
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      if (proof) {
        proof = Buffer.concat([proof, chunk]);
        if (proof.length < KEY_CHARS) return;
        if (!keyMatches(proof.subarray(0, KEY_CHARS), key!)) {
          done = true;
          clearTimeout(proofTimer);
          refuse();
          return;
        }
        clearTimeout(proofTimer);
        chunk = proof.subarray(KEY_CHARS);
        proof = undefined;
        this.#proving.delete(socket);
        this.#hadWriter = true;
        socket.write(Buffer.of(ACK));
        if (this.#paused) socket.pause();
        if (chunk.length === 0) return;
      }
      try {
        decoder.push(chunk, emit);
      } catch (err) {
        // This writer broke the format (or sent a message over the limit): drop it, keep the others.
        done = true;
        const tooLarge = err instanceof NpipeError && err.code === 'ERR_NPIPE_FRAME_TOO_LARGE';
        this.report({ writerId: 0, reason: tooLarge ? 'too-large' : 'corrupt', bytes: decoder.pendingBytes, pid: 0 });
        socket.destroy();
      }
      recount();
      if (!done && this.#partialBytes > this.#partialBudget) {
        // The writers together hold too much of messages still incomplete: this one, which took it over, goes.
        done = true;
        this.report({ writerId: 0, reason: 'memory', bytes: decoder.pendingBytes, pid: 0 });
        socket.destroy();
      }
      if (super.bufferedBytes >= RECEIVE_HIGH_WATER_BYTES && !this.#paused) {
        this.#paused = true;
        for (const s of this.#connections) if (!this.#proving.has(s)) s.pause();
      }
    });
    socket.on('end', () => finishWriter(false));
    socket.on('error', () => finishWriter(true));
    socket.on('close', () => {
      clearTimeout(proofTimer);
      this.#proving.delete(socket);
      finishWriter(true);
      this.#partialBytes -= held;
      held = 0;
      this.#connections.delete(socket);
      if (!this.#keepOpen && this.#hadWriter && this.#connections.size === 0) this.#stop();
    });
  }

  /** Stops listening and disconnects every writer; after what is queued, receive() reports the end. */
  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#key?.remove();
    this.#server.close();
    for (const socket of this.#connections) socket.destroy();
    this.end();
  }

  /** Writers are read again once what is queued is under half the high-water mark. */
  #resumeIfRoom(): void {
    if (this.#paused && super.bufferedBytes < RECEIVE_HIGH_WATER_BYTES / 2 && !this.#stopped) {
      this.#paused = false;
      for (const socket of this.#connections) socket.resume();
    }
  }

  protected override taken(): void {
    this.#resumeIfRoom();
  }

  /** Also after receiveInto() took the last of a byte stream's rest (which taken() does not see). */
  protected override wanted(): void {
    this.#resumeIfRoom();
  }

  /** The next message if one has already arrived, else undefined; never waits. */
  tryReceive(): Buffer | undefined {
    return this.take();
  }

  /**
   * Stops listening and disconnects every writer (their sends then fail with
   * ERR_NPIPE_NO_READER, or wait for the next receiver). Messages already decoded
   * are still handed out by receive(); a pending receive() with none ends with
   * undefined. Idempotent (close()).
   */
  protected shutdown(): Promise<void> {
    this.#stop();
    return Promise.resolve();
  }
}

