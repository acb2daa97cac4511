/**
 * OS errors (Node's errno-carrying fs/net errors) and their mapping to the npipe
 * error a caller can act on. Below every layer that touches the OS.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { FifoNotFoundError, FifoPermissionError, NotFifoError, NpipeError, SystemError } from '../errors.js';

/** Node's own errno-carrying errors (fs, net). */
export interface ErrnoLike extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export function isErrno(err: unknown, ...codes: string[]): err is ErrnoLike {
  return err instanceof Error && codes.includes((err as ErrnoLike).code ?? '');
}

/** Maps an OS error on `path` to the npipe error a caller can act on. */
export function fromSystemError(err: unknown, path: string, doing: string): NpipeError {
  if (err instanceof NpipeError) return err;
  const e = err as ErrnoLike;
  switch (e.code) {
    case 'ENOENT': {
      // A missing folder is not fixed by mkfifo (issue 15 #18): say which one.
      const folder = dirname(path);
      if (!existsSync(folder)) {
        return new FifoNotFoundError(`the folder ${folder} does not exist (${doing} ${path}); create it (mkdir -p ${folder}) or choose another path`, {
          cause: err,
        });
      }
      return new FifoNotFoundError(`${path} does not exist (${doing}); create it with mkfifo or allow creation`, {
        cause: err,
      });
    }
    case 'EISDIR':
      return new NotFifoError(`${path} is a directory, not a FIFO; remove it or choose another path`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new FifoPermissionError(
        `permission denied ${doing} ${path}; check the FIFO's owner and mode (ls -l ${path})`,
        { cause: err },
      );
    case 'ELOOP':
      return new NotFifoError(`${path} is a symbolic link; npipe never follows links: use the FIFO's real path`, {
        cause: err,
      });
    case 'ENOTDIR':
      return new NotFifoError(`a component of ${path} is not a directory`, { cause: err });
    default:
      // Node's own messages already begin with the code ("ENOSPC: no space left on device, write").
      return new SystemError(`${doing} ${path} failed: ${e.code && !e.message?.startsWith(e.code) ? `${e.code} ` : ''}${e.message}`.trim(), { cause: err });
  }
}
