/**
 * Request/reply messages, each one frame on the transport (see docs/RPC.md):
 *
 *   REQUEST  01 | id u32 | n u16 | reply address (n bytes, UTF-8) | payload
 *   CANCEL   02 | id u32 | n u16 | reply address
 *   REPLY    03 | id u32 | server pid u32 | payload
 *   ERROR    04 | id u32 | server pid u32 | JSON {"code": string, "message": string}
 *
 * Ids are chosen by each client; a server tells clients apart by reply address.
 */
import { BadFrameError } from '../errors.js';

export const REQUEST = 1;
export const CANCEL = 2;
export const REPLY = 3;
export const ERROR = 4;

export type RpcMessage =
  | { type: typeof REQUEST | typeof CANCEL; id: number; replyTo: string; payload: Buffer }
  | { type: typeof REPLY | typeof ERROR; id: number; serverPid: number; payload: Buffer };

export function encodeRequest(type: typeof REQUEST | typeof CANCEL, id: number, replyTo: string, payload?: Uint8Array): Buffer {
  const address = Buffer.from(replyTo, 'utf8');
  const out = Buffer.allocUnsafe(7 + address.length + (payload?.length ?? 0));
  out[0] = type;
  out.writeUInt32BE(id, 1);
  out.writeUInt16BE(address.length, 5);
  address.copy(out, 7);
  if (payload) out.set(payload, 7 + address.length);
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

export function encodeError(id: number, code: string, message: string): Buffer {
  return encodeReply(ERROR, id, Buffer.from(JSON.stringify({ code, message }), 'utf8'));
}

export function decodeRpc(frame: Buffer): RpcMessage {
  if (frame.length < 5) throw new BadFrameError(`request/reply message of ${frame.length} bytes is too short`);
  const type = frame[0]!;
  const id = frame.readUInt32BE(1);
  if (type === REQUEST || type === CANCEL) {
    if (frame.length < 7) throw new BadFrameError('request message too short');
    const n = frame.readUInt16BE(5);
    if (frame.length < 7 + n) throw new BadFrameError('request message shorter than its reply address');
    return { type, id, replyTo: frame.toString('utf8', 7, 7 + n), payload: frame.subarray(7 + n) };
  }
  if (type === REPLY || type === ERROR) {
    if (frame.length < 9) throw new BadFrameError('reply message too short');
    return { type, id, serverPid: frame.readUInt32BE(5), payload: frame.subarray(9) };
  }
  throw new BadFrameError(`unknown request/reply message type ${type}`);
}

export function decodeError(payload: Buffer): { code: string; message: string } {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as { code?: unknown; message?: unknown };
    return {
      code: typeof parsed.code === 'string' ? parsed.code : 'ERR_NPIPE_REMOTE',
      message: typeof parsed.message === 'string' ? parsed.message : 'the server reported an error',
    };
  } catch {
    return { code: 'ERR_NPIPE_REMOTE', message: payload.toString('utf8') };
  }
}
