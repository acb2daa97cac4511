/**
 * Windows named pipe addresses: `\\.\pipe\<name>`, or `//./pipe/<name>` (the
 * spelling a shell or a URL-minded user types without doubling backslashes).
 * `pipe` is matched in any case, as Windows does. Only the local machine (`.`):
 * a remote `\\host\pipe\name` is SMB, which npipe does not claim.
 */
import { InvalidArgumentError } from '../../errors.js';

const PREFIX = /^[\\/]{2}\.[\\/]pipe[\\/]/i;

/** Windows caps the whole pipe name at 256 characters (CreateNamedPipe, lpName). */
export const MAX_PIPE_NAME = 256;

/** Whether `address` has the form of a Windows named pipe (cheap; opens nothing, checks no name). */
export function isWindowsPipe(address: string): boolean {
  return PREFIX.test(address);
}

/**
 * `address` as Windows spells it: `\\.\pipe\<name>`.
 * @throws ERR_NPIPE_INVALID_ARG: not a pipe address, or a name that is empty, holds a
 * further `\` or `/` (or a NUL), or is over 256 characters.
 */
export function normalizeWindowsPipe(address: string): string {
  const prefix = PREFIX.exec(address);
  if (!prefix) throw new InvalidArgumentError(`${address} is not a Windows pipe name; write \\\\.\\pipe\\<name>`);
  const name = address.slice(prefix[0].length);
  if (name.length === 0) throw new InvalidArgumentError(`${address} names no pipe; write \\\\.\\pipe\\<name>`);
  if (/[\\/\0]/.test(name)) {
    throw new InvalidArgumentError(`the pipe name in ${address} holds a \\, / or NUL; a pipe name is one word after \\\\.\\pipe\\`);
  }
  const normal = `\\\\.\\pipe\\${name}`;
  if (normal.length > MAX_PIPE_NAME) {
    throw new InvalidArgumentError(`${address} is ${normal.length} characters long; Windows allows at most ${MAX_PIPE_NAME}`);
  }
  return normal;
}
