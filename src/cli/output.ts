/**
 * How listen and subscribe print messages: gathered into large writes (Output),
 * taken from a receiver as they come (printMessages), and as JSON lines (jsonLine).
 */
import type { Receiver } from '../messaging.js';
import { deadline } from '../util/abort.js';

// ignoreBOM: a leading U+FEFF is part of the message, printed as sent (not dropped).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export const NEWLINE = Buffer.from('\n');
const OUTPUT_CHUNK = 256 * 1024;

/**
 * What listen prints, gathered and written in pieces of about OUTPUT_CHUNK: one
 * write per message would cost more than everything else together.
 */
export class Output {
  readonly #stream: NodeJS.WritableStream;
  readonly #pieces: Buffer[] = [];
  #bytes = 0;

  constructor(stream: NodeJS.WritableStream) {
    this.#stream = stream;
  }

  /** Enough gathered to be worth a write. */
  get full(): boolean {
    return this.#bytes >= OUTPUT_CHUNK;
  }

  add(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#pieces.push(bytes);
    this.#bytes += bytes.length;
  }

  /** A message as listen and subscribe print it: one JSON line (`json`), or the bytes and a newline. */
  addMessage(message: Buffer, json: boolean): void {
    if (json) this.add(Buffer.from(jsonLine(message)));
    else {
      this.add(message);
      this.add(NEWLINE);
    }
  }

  async flush(): Promise<void> {
    if (this.#bytes === 0) return;
    const data = this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#bytes);
    this.#pieces.length = 0;
    this.#bytes = 0;
    if (!this.#stream.write(data)) await drained(this.#stream);
  }
}

/**
 * Prints the messages `receiver` gives, each through `print` (into `out`), until it
 * ends, `count` have come, or none comes for `timeout` ms (ERR_NPIPE_TIMEOUT, saying
 * `nothingCame`). What has arrived is taken without waiting (tryReceive) and written
 * in large pieces; everything taken is written out before this returns or throws.
 */
export async function printMessages(
  receiver: Receiver<Buffer>,
  out: Output,
  options: { timeout: number | undefined; count: number | undefined; nothingCame: string; print(message: Buffer): void },
): Promise<void> {
  const { timeout, count, nothingCame, print } = options;
  let received = 0;
  try {
    for (;;) {
      let message = receiver.tryReceive();
      if (message === undefined) {
        await out.flush();
        const wait = deadline({ timeout }, nothingCame);
        try {
          message = await receiver.receive({ signal: wait.signal });
        } finally {
          wait.dispose();
        }
        if (message === undefined) break;
      }
      print(message);
      if (out.full) await out.flush();
      if (++received === count) break;
    }
  } finally {
    await out.flush();
  }
}

/** A message as one JSON line: {"text":"..."}, or {"base64":"..."} when it is not valid UTF-8. */
export function jsonLine(message: Buffer): string {
  let record: { text: string } | { base64: string };
  try {
    record = { text: utf8.decode(message) };
  } catch {
    record = { base64: message.toString('base64') };
  }
  return `${JSON.stringify(record)}\n`;
}

function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
