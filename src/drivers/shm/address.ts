/**
 * Shared-memory addresses: `shm://<name>`, where the name is one word of letters,
 * digits, `.`, `_` and `-` (at most 100), not `.` or `..`: it names a folder under
 * the user's own folder in /dev/shm (folder.ts), so it may hold no `/`.
 */
import { InvalidArgumentError } from '../../errors.js';

const PREFIX = /^shm:\/\//i;
const NAME = /^[A-Za-z0-9._-]{1,100}$/;

/** Whether `address` has the form of a shared-memory address (cheap; opens nothing, checks no name). */
export function isShmAddress(address: string): boolean {
  return PREFIX.test(address);
}

/**
 * The name in `address`.
 * @throws ERR_NPIPE_INVALID_ARG: not an shm:// address, or a name that is empty, `.` or `..`,
 * over 100 characters, or holds anything but letters, digits, `.`, `_` and `-`.
 */
export function shmName(address: string): string {
  const prefix = PREFIX.exec(address);
  if (!prefix) throw new InvalidArgumentError(`${address} is not a shared-memory address; write shm://<name>`);
  const name = address.slice(prefix[0].length);
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(
      `the name in ${JSON.stringify(address)} is not 1 to 100 letters, digits, '.', '_' or '-' (and not . or ..); write shm://<name>, such as shm://jobs`,
    );
  }
  return name;
}
