import { constants as bufferConstants } from 'node:buffer';
import { InvalidArgumentError } from '../errors.js';
import { fixedFraming } from './fixed.js';
import { framesFraming, FRAMES_MAX_MESSAGE } from './frames.js';
import { lengthFraming } from './length.js';
import { linesFraming } from './lines.js';
import { rawFraming } from './raw.js';
import type { Framing } from './types.js';

export type { DecoderOptions, DropInfo, Emit, FrameDecoder, Framing } from './types.js';
export { compact, view } from './view.js';

/**
 * PIPE_BUF: the kernel keeps a write of at most this many bytes whole, even among
 * several writers (4096 on Linux, 512 on macOS and the BSDs).
 */
export const PIPE_BUF = process.platform === 'linux' ? 4096 : 512;

/** `frames` (many writers), `lines`, `length`, `raw`, or `fixed:N` for messages of exactly N bytes. */
export type FormatName = 'frames' | 'lines' | 'length' | 'raw' | `fixed:${number}`;

/** 64 MiB: the largest message accepted unless `maxMessageSize` says otherwise. */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/** The format names as help and error messages list them. */
export const FORMAT_NAMES = ['frames', 'lines', 'length', 'fixed:N', 'raw'] as const;

/**
 * `maxMessageSize` as given (undefined: DEFAULT_MAX_MESSAGE_SIZE), checked.
 * @throws ERR_NPIPE_INVALID_ARG unless a whole number from 1 to buffer.constants.MAX_LENGTH.
 */
export function checkMaxMessageSize(max: unknown): number {
  if (max === undefined) return DEFAULT_MAX_MESSAGE_SIZE;
  if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 1 || max > bufferConstants.MAX_LENGTH) {
    throw new InvalidArgumentError(
      `maxMessageSize must be a whole number of bytes from 1 to ${bufferConstants.MAX_LENGTH}, got ${String(max)}`,
    );
  }
  return max;
}

/** Options of createFraming. */
export interface FramingOptions {
  maxMessageSize?: number;
  /** frames: the most bytes a reader keeps for incomplete messages (default max(4 x maxMessageSize, 256 MiB)). */
  maxPartialBytes?: number;
  /** frames: this writer's id (default random). */
  writerId?: number;
}

/**
 * The framing for a format name.
 * @throws ERR_NPIPE_INVALID_ARG for an unknown name or a bad size.
 */
export function createFraming(format: string, options: FramingOptions = {}): Framing {
  const max = checkMaxMessageSize(options.maxMessageSize);
  switch (format) {
    case 'frames':
      return framesFraming({
        maxMessageSize: Math.min(max, FRAMES_MAX_MESSAGE),
        packetSize: PIPE_BUF,
        ...(options.writerId === undefined ? {} : { writerId: options.writerId }),
        ...(options.maxPartialBytes === undefined ? {} : { maxPartialBytes: options.maxPartialBytes }),
      });
    case 'lines':
      return linesFraming(max);
    case 'length':
      return lengthFraming(max);
    case 'raw':
      return rawFraming(max);
  }
  const fixed = /^fixed:(\d+)$/.exec(format);
  if (fixed) return fixedFraming(Number(fixed[1]), max);
  throw new InvalidArgumentError(`unknown format ${JSON.stringify(format)}; use one of ${FORMAT_NAMES.join(', ')}`);
}
