/**
 * Request/reply messages, each one frame on the transport (see docs/RPC.md):
 *
 *   REQUEST   01 | id u32 | n u16 | reply address (n bytes, UTF-8) | payload
 *   CANCEL    02 | id u32 | n u16 | reply address
 *   REPLY     03 | id u32 | server pid u32 | payload
 *   ERROR     04 | id u32 | server pid u32 | JSON {"code": string, "message": string, ...}
 *   REQUEST+  05 | id u32 | n u16 | reply address | max reply u32 | payload
 *   SIZE      06 | id u32 | n u16 | reply address | request bytes u32
 *
 * Ids are chosen by each client; a server tells clients apart by reply address.
 * REQUEST+ is a REQUEST that says the largest reply its client takes (issue 15 #2:
 * a reply over it is an ERROR ERR_NPIPE_FRAME_TOO_LARGE, not a frame the client's
 * reader drops while the client waits for ever). SIZE goes just before a request
 * of more than SIZE_THRESHOLD bytes: a server whose limit it passes drops the
 * request unread (the transport does), but answers the SIZE with that error.
 */
import { BadFrameError } from '../errors.js';
import { PIPE_BUF, view } from '../framing/index.js';

export const REQUEST = 1;
export const CANCEL = 2;
export const REPLY = 3;
export const ERROR = 4;
export const LIMITED_REQUEST = 5;
export const SIZE = 6;

/**
 * Requests larger than this are announced by a SIZE message: PIPE_BUF less a frames
 * packet header. Anything larger travels as several packets, which a server over
 * its limit drops before it could read the id; a request up to this size travels
 * whole in one packet, which reaches the server whatever its size, so the server
 * answers it from the request itself.
 */
export const SIZE_THRESHOLD = PIPE_BUF - 8;

export type ClientMessageType = typeof REQUEST | typeof CANCEL | typeof LIMITED_REQUEST | typeof SIZE;

export type RpcMessage =
  | {
      type: ClientMessageType;
      id: number;
      replyTo: string;
      payload: Buffer;
      /** REQUEST+: the largest reply frame the client takes; 0: not said (REQUEST). */
      maxReply: number;
      /** SIZE: the request's size in bytes. */
      size: number;
    }
  | { type: typeof REPLY | typeof ERROR; id: number; serverPid: number; payload: Buffer };

/** REQUEST or CANCEL; for REQUEST+ and SIZE, `extra` is the u32 (max reply, request size) before the payload. */
export function encodeRequest(type: ClientMessageType, id: number, replyTo: string | Buffer, payload?: Uint8Array, extra?: number): Buffer {
  const address = typeof replyTo === 'string' ? Buffer.from(replyTo, 'utf8') : replyTo;
  const withExtra = type === LIMITED_REQUEST || type === SIZE;
  const head = 7 + address.length + (withExtra ? 4 : 0);
  const out = Buffer.allocUnsafe(head + (payload?.length ?? 0));
  out[0] = type;
  out.writeUInt32BE(id, 1);
  out.writeUInt16BE(address.length, 5);
  address.copy(out, 7);
  if (withExtra) out.writeUInt32BE(Math.min(extra ?? 0, 0xffffffff), 7 + address.length);
  if (payload) out.set(payload, head);
  return out;
}

export function encodeReply(type: typeof REPLY | typeof ERROR, id: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out[0] = type;
  out.writeUInt32BE(id, 1);
  out.writeUInt32BE(process.pid, 5);
  out.set(payload, 9);
  return out;
}

/** `detail`: more fields for the client (ERR_NPIPE_FRAME_TOO_LARGE: size, limit, what). */
export function encodeError(id: number, code: string, message: string, detail?: Record<string, string | number>): Buffer {
  return encodeReply(ERROR, id, Buffer.from(JSON.stringify({ ...detail, code, message }), 'utf8'));
}

/**
 * encodeError, within `limit` bytes: a message (then a code) too long for the client is cut, halved
 * until the ERROR fits and marked " [cut]". Sent whole, the client's reader would drop it as too large
 * and the request wait for ever: a handler's 2 MB error text must not do that.
 */
export function encodeErrorWithin(limit: number, id: number, code: string, message: string, detail?: Record<string, string | number>): Buffer {
  let reply = encodeError(id, code, message, detail);
  for (let text = message; reply.length > limit && text.length > 0; ) {
    text = text.slice(0, text.length >> 1);
    reply = encodeError(id, code, `${text} [cut]`, detail);
  }
  if (reply.length > limit && code.length > 64) reply = encodeError(id, code.slice(0, 64), ' [cut]', detail);
  return reply;
}

/**
 * Whether `frame` is a client's message (REQUEST, CANCEL, REQUEST+, SIZE) that
 * names exactly `address` as its reply address: a transport whose reply address
 * is the connection itself (Windows pipes) refuses any other, so no client can
 * have replies sent to, or cancel the requests of, a connection not its own.
 */
export function namesReplyAddress(frame: Buffer, address: Buffer): boolean {
  const type = frame[0];
  if (type !== REQUEST && type !== CANCEL && type !== LIMITED_REQUEST && type !== SIZE) return false;
  return frame.length >= 7 + address.length && namesAddress(frame, frame.readUInt16BE(5), address);
}

/**
 * Whether a client's message whose reply address is `n` bytes long (at offset 7,
 * inside the frame) names exactly `address`: compared byte by byte, with no view made.
 */
function namesAddress(frame: Buffer, n: number, address: Buffer): boolean {
  if (n !== address.length) return false;
  for (let i = 0; i < n; i++) if (frame[7 + i] !== address[i]) return false;
  return true;
}

/** A reply address seen before, as bytes and as text: decodeRpc() reuses the text when a message names it again. */
export interface KnownAddress {
  bytes: Buffer;
  text: string;
}

/**
 * `known`: the address the last message named. A server's next request is most
 * often from the same client; the same string (not a new one decoded from UTF-8)
 * is then its key in the server's map of clients (issue 18 #3: a round trip's cost).
 */
export function decodeRpc(frame: Buffer, known?: KnownAddress): RpcMessage {
  if (frame.length < 5) throw new BadFrameError(`request/reply message of ${frame.length} bytes is too short`);
  const type = frame[0]!;
  const id = frame.readUInt32BE(1);
  if (type === REQUEST || type === CANCEL || type === LIMITED_REQUEST || type === SIZE) {
    if (frame.length < 7) throw new BadFrameError('request message too short');
    const n = frame.readUInt16BE(5);
    const head = 7 + n + (type === LIMITED_REQUEST || type === SIZE ? 4 : 0);
    if (frame.length < head) throw new BadFrameError('request message shorter than its header');
    const extra = head > 7 + n ? frame.readUInt32BE(7 + n) : 0;
    return {
      type,
      id,
      replyTo: known !== undefined && namesAddress(frame, n, known.bytes) ? known.text : frame.toString('utf8', 7, 7 + n),
      payload: view(frame, head, frame.length),
      maxReply: type === LIMITED_REQUEST ? extra : 0,
      size: type === SIZE ? extra : 0,
    };
  }
  if (type === REPLY || type === ERROR) {
    if (frame.length < 9) throw new BadFrameError('reply message too short');
    return { type, id, serverPid: frame.readUInt32BE(5), payload: view(frame, 9, frame.length) };
  }
  throw new BadFrameError(`unknown request/reply message type ${type}`);
}

export interface DecodedError {
  code: string;
  message: string;
  /** ERR_NPIPE_FRAME_TOO_LARGE: the sizes, when the server said them. */
  size?: number;
  limit?: number;
  what?: string;
}

export function decodeError(payload: Buffer): DecodedError {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    const out: DecodedError = {
      code: typeof parsed.code === 'string' ? parsed.code : 'ERR_NPIPE_REMOTE',
      message: typeof parsed.message === 'string' ? parsed.message : 'the server reported an error',
    };
    if (Number.isSafeInteger(parsed.size)) out.size = parsed.size as number;
    if (Number.isSafeInteger(parsed.limit)) out.limit = parsed.limit as number;
    if (parsed.what === 'request' || parsed.what === 'reply') out.what = parsed.what;
    return out;
  } catch {
    return { code: 'ERR_NPIPE_REMOTE', message: payload.toString('utf8') };
  }
}
