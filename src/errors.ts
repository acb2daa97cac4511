/**
 * Every error npipe raises is an {@link NpipeError} with a stable `code`.
 * Match on `code` (or the class), never on the message text: messages say what
 * happened and what to do next, and may be reworded.
 *
 * An OS error that caused one of these is kept in `cause` (with its `errno`,
 * `syscall` and `path`).
 */

export type NpipeErrorCode =
  | 'ERR_NPIPE_NOT_FIFO'
  | 'ERR_NPIPE_UNSAFE'
  | 'ERR_NPIPE_NOT_FOUND'
  | 'ERR_NPIPE_PERMISSION'
  | 'ERR_NPIPE_TIMEOUT'
  | 'ERR_NPIPE_NO_READER'
  | 'ERR_NPIPE_FRAME_TOO_LARGE'
  | 'ERR_NPIPE_BAD_FRAME'
  | 'ERR_NPIPE_BAD_PAYLOAD'
  | 'ERR_NPIPE_CLOSED'
  | 'ERR_NPIPE_BUSY'
  | 'ERR_NPIPE_BUFFER_TOO_SMALL'
  | 'ERR_NPIPE_INVALID_ARG'
  | 'ERR_NPIPE_UNSUPPORTED'
  | 'ERR_NPIPE_SERVER_GONE'
  | 'ERR_NPIPE_REMOTE'
  | 'ERR_NPIPE_UNREACHABLE'
  | 'ERR_NPIPE_SLOW_CONSUMER'
  | 'ERR_NPIPE_AUTH'
  | 'ERR_NPIPE_SYSTEM';

export class NpipeError extends Error {
  readonly code: NpipeErrorCode;

  constructor(code: NpipeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  static {
    this.prototype.name = 'NpipeError';
  }
}

/** The path is not a FIFO: a regular file, a directory, a symlink (never followed), or missing type. */
export class NotFifoError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_NOT_FIFO', message, options);
  }
  static {
    this.prototype.name = 'NotFifoError';
  }
}

/** The FIFO exists but another user could read from it or inject into it. */
export class UnsafeFifoError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_UNSAFE', message, options);
  }
  static {
    this.prototype.name = 'UnsafeFifoError';
  }
}

/** The path does not exist and creating it was not allowed (`create: false`). */
export class FifoNotFoundError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_NOT_FOUND', message, options);
  }
  static {
    this.prototype.name = 'FifoNotFoundError';
  }
}

/** The OS refused access (EACCES/EPERM). */
export class FifoPermissionError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_PERMISSION', message, options);
  }
  static {
    this.prototype.name = 'FifoPermissionError';
  }
}

/** A wait (for a reader, for room in the pipe, for a message) ran past its `timeout`. */
export class TimeoutError extends NpipeError {
  constructor(message: string) {
    super('ERR_NPIPE_TIMEOUT', message);
  }
  static {
    this.prototype.name = 'TimeoutError';
  }
}

/** No process has the FIFO open for reading: it went away (EPIPE) while we were writing. */
export class NoReaderError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_NO_READER', message, options);
  }
  static {
    this.prototype.name = 'NoReaderError';
  }
}

/** A message (or a header announcing one) is larger than `maxMessageSize`. */
export class FrameTooLargeError extends NpipeError {
  readonly size: number;
  readonly limit: number;
  /** What was too large: 'message', 'request', 'reply'... */
  readonly what: string;
  /** `hint`: a likelier cause, said before the advice to raise the limit. */
  constructor(size: number, limit: number, what = 'message', hint?: string) {
    super(
      'ERR_NPIPE_FRAME_TOO_LARGE',
      `${what} of ${size} bytes is larger than the limit of ${limit} bytes; ` +
        (hint ? `${hint} If not, ` : '') +
        'raise maxMessageSize (--max-size) on both ends if this size is expected',
    );
    this.size = size;
    this.limit = limit;
    this.what = what;
  }
  static {
    this.prototype.name = 'FrameTooLargeError';
  }
}

/** The byte stream does not follow the format (bad header, truncated message), or a message cannot be encoded in it. */
export class BadFrameError extends NpipeError {
  constructor(message: string) {
    super('ERR_NPIPE_BAD_FRAME', message);
  }
  static {
    this.prototype.name = 'BadFrameError';
  }
}

/** A message arrived whole but its payload is not what the codec expects (invalid UTF-8, invalid JSON). */
export class BadPayloadError extends NpipeError {
  /** The message as it arrived. */
  readonly payload: Uint8Array;
  constructor(message: string, payload: Uint8Array, options?: { cause?: unknown }) {
    super('ERR_NPIPE_BAD_PAYLOAD', message, options);
    this.payload = payload;
  }
  static {
    this.prototype.name = 'BadPayloadError';
  }
}

/** The sender or receiver was closed. */
export class ClosedError extends NpipeError {
  constructor(message: string) {
    super('ERR_NPIPE_CLOSED', message);
  }
  static {
    this.prototype.name = 'ClosedError';
  }
}

/** A call that may not overlap with another one of its kind was made while the first was in progress. */
export class BusyError extends NpipeError {
  constructor(message: string) {
    super('ERR_NPIPE_BUSY', message);
  }
  static {
    this.prototype.name = 'BusyError';
  }
}

/**
 * receiveInto(): the next message is larger than the buffer it was to go into
 * (Python's BufferTooShort). Nothing is lost: the message is `payload`, and the
 * call after this one receives the message after it.
 */
export class BufferTooSmallError extends NpipeError {
  /** The whole message. */
  readonly payload: Buffer;
  /** The buffer's length. */
  readonly capacity: number;
  constructor(payload: Buffer, capacity: number) {
    super('ERR_NPIPE_BUFFER_TOO_SMALL', `a message of ${payload.length} bytes does not fit in the ${capacity}-byte buffer given to receiveInto(); the message is this error's payload`);
    this.payload = payload;
    this.capacity = capacity;
  }
  static {
    this.prototype.name = 'BufferTooSmallError';
  }
}

/**
 * A subscriber that fell too far behind was disconnected by a publisher (the
 * `disconnect` policy for slow subscribers): what it had received is delivered,
 * then this error ends its stream.
 */
export class SlowConsumerError extends NpipeError {
  constructor(message: string) {
    super('ERR_NPIPE_SLOW_CONSUMER', message);
  }
  static {
    this.prototype.name = 'SlowConsumerError';
  }
}

/** An option or argument is out of range or of the wrong type. */
export class InvalidArgumentError extends NpipeError {
  /** `cause`: what made it invalid, when that is an error (a file that cannot be read). */
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_INVALID_ARG', message, options);
  }
  static {
    this.prototype.name = 'InvalidArgumentError';
  }
}

/** The platform lacks what the call needs (for example F_SETPIPE_SZ outside Linux). */
export class UnsupportedError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_UNSUPPORTED', message, options);
  }
  static {
    this.prototype.name = 'UnsupportedError';
  }
}

/** The server a request went to went away before answering (or, for a new request, is not there). */
export class ServerGoneError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_SERVER_GONE', message, options);
  }
  static {
    this.prototype.name = 'ServerGoneError';
  }
}

/**
 * The server's handler failed. `code` is always ERR_NPIPE_REMOTE; `remoteCode` and
 * the message are the handler's (its error's `code`, or ERR_NPIPE_REMOTE when it had none).
 */
export class RemoteError extends NpipeError {
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string) {
    super('ERR_NPIPE_REMOTE', message);
    this.remoteCode = remoteCode;
  }
  static {
    this.prototype.name = 'RemoteError';
  }
}

/** The messaging server (NATS) could not be reached, or the connection to it was lost for good. */
export class UnreachableError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_UNREACHABLE', message, options);
  }
  static {
    this.prototype.name = 'UnreachableError';
  }
}

/**
 * The messaging server (NATS) refused who we are: its "Authorization Violation"
 * (a wrong or missing token, user/password, NKey or credentials), or a TLS
 * certificate one side does not trust (the server's, not signed by the CA given;
 * the client's, missing or not signed by a CA the server trusts). Never retried:
 * waiting (waitForServer, --wait) cannot make it right.
 */
export class AuthError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_AUTH', message, options);
  }
  static {
    this.prototype.name = 'AuthError';
  }
}

/** Any other OS error; `cause` has errno, syscall and path. */
export class SystemError extends NpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NPIPE_SYSTEM', message, options);
  }
  static {
    this.prototype.name = 'SystemError';
  }
}
