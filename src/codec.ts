import { BadPayloadError, InvalidArgumentError } from './errors.js';

/**
 * A payload codec turns what the program sends into message bytes and back.
 * `bytes`: Uint8Array in, Buffer out. `text`: string (UTF-8) in, string out;
 * invalid UTF-8 on receipt is ERR_NPIPE_BAD_PAYLOAD. `json`: any JSON value.
 * On send, `bytes` and `text` both accept a string or bytes.
 *
 * `T` is what `decode` gives, `In` what `encode` takes (the same unless said): the
 * types of a Receiver's messages and of what a Sender's `send` accepts follow them.
 */
export interface Codec<T, In = T> {
  readonly name: string;
  encode(value: In): Uint8Array;
  decode(bytes: Buffer): T;
}

export type CodecName = 'bytes' | 'text' | 'json';

/** What `send` takes with the `bytes` or `text` codec (both encode either). */
export type Sendable = string | Uint8Array;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function toBytes(value: string | Uint8Array, codec: string): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return value;
  throw new InvalidArgumentError(`the ${codec} codec sends strings or Uint8Arrays, got ${typeof value}`);
}

export const bytesCodec: Codec<Buffer, Sendable> = {
  name: 'bytes',
  encode: (value) => toBytes(value, 'bytes'),
  decode: (bytes) => bytes,
};

export const textCodec: Codec<string, Sendable> = {
  name: 'text',
  encode: (value) => toBytes(value, 'text'),
  decode(bytes) {
    try {
      return utf8.decode(bytes);
    } catch (cause) {
      throw new BadPayloadError('a message is not valid UTF-8; receive it with the bytes codec', bytes, { cause });
    }
  },
};

export const jsonCodec: Codec<unknown> = {
  name: 'json',
  encode(value) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new InvalidArgumentError(`the json codec cannot send ${typeof value}`);
    return Buffer.from(text, 'utf8');
  },
  decode(bytes) {
    try {
      return JSON.parse(utf8.decode(bytes)) as unknown;
    } catch (cause) {
      throw new BadPayloadError('a message is not valid JSON; receive it with the text or bytes codec', bytes, { cause });
    }
  },
};

/** The codec an option names, or the option itself (not checked against `T`: the caller's types say it). */
export function resolveCodec<T, In = T>(codec: CodecName | Codec<T, In> | undefined, fallback: CodecName): Codec<T, In> {
  const chosen = codec ?? fallback;
  if (typeof chosen === 'object' && chosen !== null) return chosen;
  switch (chosen) {
    case 'bytes':
      return bytesCodec as unknown as Codec<T, In>;
    case 'text':
      return textCodec as unknown as Codec<T, In>;
    case 'json':
      return jsonCodec as Codec<T, In>;
  }
  throw new InvalidArgumentError(`unknown codec ${JSON.stringify(chosen)}; use bytes, text or json`);
}
