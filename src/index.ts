/**
 * npipe's public surface, listed by hand (nats.js mod.ts): what users call, and
 * the types of its options. The low-level FIFO layer (mkfifo, checked FIFO ends,
 * pipe sizes) is the `npipe/fifo` subpath (fifo-public.ts); everything else is
 * internal. test/public-api.test.ts pins the list: a new export is a deliberate
 * change there too.
 */

// Messages: one address (a FIFO path or a nats:// URL), whole messages.
export { openSender, openReceiver, DEFAULT_FORMAT } from './api.js';
export type { SenderOptions, ReceiverOptions, ServeOptions, ConnectOptions } from './api.js';
export { Sender, Receiver } from './messaging.js';
export { openPublisher, subscribe } from './api.js';
export type { PublisherOptions, SubscribeOptions } from './api.js';
export { Publisher } from './publisher.js';
export type { CallOptions, SlowPolicy } from './transport/types.js';
export type { WaitOptions } from './util/abort.js';
export type { Delivery } from './drivers/nats/url.js';
export type { NatsOptions } from './drivers/nats/options.js';

// Request/reply.
export { serve, connect } from './api.js';
export { Server, Client } from './rpc/index.js';
export type { Handler, HandlerContext, RequestOptions, ServerEvent, ServerStats } from './rpc/index.js';

// Payload codecs.
export { bytesCodec, textCodec, jsonCodec } from './codec.js';
export type { Codec, CodecName, Sendable } from './codec.js';

// Formats: the encoders and incremental decoders (docs/FORMATS.md) and their limits.
export { createFraming, DEFAULT_MAX_MESSAGE_SIZE, PIPE_BUF } from './framing/index.js';
export type { Framing, FramingOptions, FrameDecoder, FormatName, Emit, DropInfo, DecoderOptions } from './framing/index.js';

// A buffer for receiveInto() at full copy speed (docs/TUNING.md).
export { allocAligned } from './sys/aligned.js';

// Errors: one class per code.
export {
  NpipeError,
  NotFifoError,
  UnsafeFifoError,
  FifoNotFoundError,
  FifoPermissionError,
  TimeoutError,
  NoReaderError,
  FrameTooLargeError,
  BadFrameError,
  BadPayloadError,
  ClosedError,
  BusyError,
  BufferTooSmallError,
  InvalidArgumentError,
  UnsupportedError,
  ServerGoneError,
  RemoteError,
  UnreachableError,
  SlowConsumerError,
  AuthError,
  SystemError,
} from './errors.js';
export type { NpipeErrorCode } from './errors.js';
