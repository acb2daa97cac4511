/**
 * What every server shares, whatever the medium: the handler's cancellation and
 * turning its result or error into a reply.
 */
import { FrameTooLargeError, NpipeError } from '../errors.js';
import type { Codec } from '../codec.js';

export interface HandlerContext {
  /** Aborts when the client cancels (its timeout or signal), goes away, or the server closes. */
  signal: AbortSignal;
  /** The client's reply address: tells clients apart. */
  client: string;
}

export type Handler<Req, Res> = (request: Req, context: HandlerContext) => Res | Promise<Res>;

/**
 * A handler's cancellation. Its AbortController (costly to make, in Node) is only
 * made if the handler looks at `signal`.
 */
export class Cancel {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

export type Outcome =
  | { ok: true; payload: Uint8Array }
  | { ok: false; code: string; message: string; detail?: { size: number; limit: number; what: string } };

/**
 * Runs `handler` on an encoded request; never throws: a failure is an outcome with
 * the error's code. A handler that answers at once (not a promise) gets its outcome
 * at once too, not a promise: the server replies in the same turn, without the
 * microtask hops of awaiting a value that is already there (issue 18 #3).
 */
export function runHandler(
  handler: Handler<unknown, unknown>,
  codec: Codec<unknown>,
  payload: Buffer,
  cancel: Cancel,
  client: string,
): Outcome | Promise<Outcome> {
  let result: unknown;
  try {
    const request = codec.decode(payload);
    const context: HandlerContext = {
      get signal() {
        return cancel.signal;
      },
      client,
    };
    result = handler(request, context);
  } catch (err) {
    return failed(err);
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      (value) => encoded(codec, value),
      (err: unknown) => failed(err),
    );
  }
  return encoded(codec, result);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** The handler's answer, encoded; an answer the codec cannot encode is a failure like any other. */
function encoded(codec: Codec<unknown>, value: unknown): Outcome {
  try {
    return { ok: true, payload: codec.encode(value) };
  } catch (err) {
    return failed(err);
  }
}

function failed(err: unknown): Outcome {
  const own = (err as { code?: unknown } | undefined)?.code;
  const code = err instanceof NpipeError ? err.code : typeof own === 'string' ? own : 'ERR_NPIPE_REMOTE';
  const message = err instanceof Error ? err.message : String(err);
  // A reply the handler found too large (npipe serve --exec: the command's output):
  // the size error of docs/RPC.md, which the client turns into FrameTooLargeError.
  if (err instanceof FrameTooLargeError && err.what === 'reply') {
    return { ok: false, code, message, detail: { size: err.size, limit: err.limit, what: 'reply' } };
  }
  return { ok: false, code, message };
}
