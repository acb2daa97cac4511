/**
 * The OS's errors on a Windows pipe, said in Windows terms (sys/errno.ts speaks
 * of FIFOs, modes and `ls -l`). The codes are the FIFO's, so exit codes stay the same.
 */
import { FifoPermissionError, SystemError, type NpipeError } from '../../errors.js';

/** `err` from listening on or connecting to pipe `name`, as an npipe error (the OS error kept in `cause`). */
export function pipeError(err: unknown, name: string, doing: 'listening on' | 'connecting to'): NpipeError {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new FifoPermissionError(`permission denied ${doing} ${name}: the pipe belongs to another user, or its security descriptor refuses you`, {
        cause: err,
      });
    case 'EADDRINUSE':
      return new SystemError(`another receiver already listens on ${name}; stop it, or choose another pipe name`, { cause: err });
    default:
      return new SystemError(`${doing} ${name} failed: ${code ?? ''} ${(err as Error).message}`, { cause: err });
  }
}
