/**
 * Request/reply's view of FIFOs: a server's well-known FIFO, clients' private
 * reply FIFOs, all in the frames format (many clients share the server's FIFO).
 */
import { closeSync, constants, openSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { NoReaderError, NpipeError, ServerGoneError } from '../../errors.js';
import { isErrno } from '../../sys/errno.js';
import {
  checkReplyFifo,
  checkReplyPath,
  createReplyFifo,
  ensureReplyDirectory,
  removeStaleReplyFifos,
} from '../../fifo/index.js';
import { createFraming, type Framing } from '../../framing/index.js';
import { openFifoFrameSender } from './sender.js';
import { openFifoFrameReceiver } from './receiver.js';
import { DEFAULT_RPC_MAX_MESSAGE } from '../../rpc/limits.js';
import { removeAtExit, removeQuietly } from '../../util/at-exit.js';
import type { ConnectOptions, FrameSender, ListenOptions, ReplyEndpoint, Transport } from '../../transport/types.js';

export interface FifoTransportOptions {
  /** Largest request or reply, in bytes (default 1 MiB). */
  maxMessageSize?: number;
  /** Accept a server FIFO writable by group or others. */
  allowShared?: boolean;
}

export class FifoTransport implements Transport {
  readonly #framing: Framing;
  readonly #options: FifoTransportOptions;

  constructor(options: FifoTransportOptions = {}) {
    this.#options = options;
    this.#framing = createFraming('frames', { maxMessageSize: options.maxMessageSize ?? DEFAULT_RPC_MAX_MESSAGE });
  }

  listen(path: string, options: ListenOptions = {}) {
    return openFifoFrameReceiver(path, this.#framing, {
      allowShared: this.#options.allowShared === true,
      ...(options.onDrop ? { onDrop: options.onDrop } : {}),
    });
  }

  async connect(path: string, options: ConnectOptions = {}): Promise<FrameSender> {
    try {
      return await openFifoFrameSender(path, this.#framing, {
        allowShared: this.#options.allowShared === true,
        create: options.wait === true,
        waitForReader: options.wait === true,
        ...(options.signal ? { signal: options.signal } : {}),
        // Without wait, a server that is not there is an error now, not a wait.
        timeout: options.wait ? options.timeout ?? 2 ** 31 - 1 : 0,
      });
    } catch (err) {
      if (err instanceof NpipeError && ['ERR_NPIPE_NOT_FOUND', 'ERR_NPIPE_TIMEOUT'].includes(err.code) && !options.wait) {
        throw new ServerGoneError(`no server is listening on ${path}; start it (npipe serve ${path} ...), or wait for it (waitForServer)`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async createReplyEndpoint(): Promise<ReplyEndpoint> {
    const dir = ensureReplyDirectory();
    removeStaleReplyFifos(dir);
    const path = createReplyFifo(dir);
    // Removed at exit, whatever the exit, unless it is closed first.
    const undoAtExit = removeAtExit(path);
    let receiver;
    try {
      receiver = await openFifoFrameReceiver(path, this.#framing, { create: false });
    } catch (err) {
      unlinkSync(path);
      undoAtExit();
      throw err;
    }
    let closing: Promise<void> | undefined;
    return {
      address: path,
      receiver,
      close: () =>
        (closing ??= (async () => {
          await receiver.close();
          removeQuietly(path); // or removed by someone cleaning up after us: fine
          undoAtExit();
        })()),
    };
  }

  checkReplyAddress(address: string): number {
    return checkReplyFifo(address);
  }

  async openReply(address: string): Promise<FrameSender> {
    const owner = checkReplyPath(address);
    try {
      return await openFifoFrameSender(address, this.#framing, { create: false, timeout: 0, owner });
    } catch (err) {
      if (err instanceof NpipeError && ['ERR_NPIPE_TIMEOUT', 'ERR_NPIPE_NOT_FOUND'].includes(err.code)) {
        // No reader: if the client that made it is gone too, its FIFO is a leftover: remove it.
        removeStaleReplyFifos(dirname(address), basename(address));
        throw new NoReaderError(`the client behind ${address} is gone`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * The server is there while the FIFO at `path` has a reader (a non-blocking open
   * for writing succeeds: ENXIO means no reader, ENOENT no FIFO; any other failure
   * means we cannot reach it either) and, once a reply named it, while process
   * `serverPid` lives: another server may have opened the path since (ESRCH).
   */
  isServerAlive(path: string, serverPid: number): boolean {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW));
    } catch {
      return false;
    }
    if (serverPid !== 0) {
      try {
        process.kill(serverPid, 0);
      } catch (err) {
        if (isErrno(err, 'ESRCH')) return false;
      }
    }
    return true;
  }
}
