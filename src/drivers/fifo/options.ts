/**
 * What a FIFO sender and receiver take beyond the open options of ../../fifo, and
 * the defaults a receiver uses when they are not given.
 */
import type { OpenFifoOptions, OpenReaderOptions } from '../../fifo/index.js';
import type { DropInfo } from '../../framing/index.js';

/** The pipe capacity a receiver asks for unless told otherwise: fewer wake-ups than the kernel's 64 KiB, and reads small enough to keep the reader's memory low. */
export const DEFAULT_RECEIVER_PIPE_SIZE = 256 * 1024;

/**
 * `timeout` for a sender means no progress for that long: no reader came (open,
 * and each wait for the next reader), or the pipe took no byte of what is being
 * written (a reader that opened the FIFO and stopped reading, or another writer
 * holding the writers' lock). Then ERR_NPIPE_TIMEOUT. 0: do not wait for a reader;
 * writes are not bounded then.
 */
export interface FifoSenderOptions extends OpenFifoOptions {
  /** Pipe capacity to ask for once open (Linux, F_SETPIPE_SZ). */
  pipeSize?: number;
  /**
   * What to do when the reader goes away. false (default): pending and later sends
   * fail with ERR_NPIPE_NO_READER. true: wait for the next reader (each wait up to
   * `timeout`, then ERR_NPIPE_TIMEOUT) and carry on; a message the departure cut is
   * sent again whole (the reader drops the cut copy; frames format).
   */
  waitForReader?: boolean;
}

export interface FifoReceiverOptions extends OpenReaderOptions {
  /** Pipe capacity to ask for (Linux). Default: 256 KiB if the kernel allows, else its default. */
  pipeSize?: number;
  /** frames: the most bytes kept for incomplete messages, all writers together. */
  maxPartialBytes?: number;
  /** frames: called for each message dropped rather than delivered torn. */
  onDrop?: (info: DropInfo) => void;
  /**
   * frames: a message in progress that gets no new packet for this many
   * milliseconds while the receiver is reading is dropped (`stalled`), so that a
   * writer that stops mid-message (or forges a first packet) cannot hold the
   * memory for partial messages for ever. Default 30 000.
   */
  partialTimeout?: number;
}

/** frames: the default `partialTimeout`. */
export const DEFAULT_PARTIAL_TIMEOUT_MS = 30_000;
