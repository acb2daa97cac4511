/**
 * How listen and subscribe print messages: gathered into large writes (Output),
 * and as JSON lines (jsonLine).
 */
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
