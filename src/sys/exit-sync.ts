import { closeSync, fstatSync, openSync } from 'node:fs';
import { loadedLibc } from './libc.js';

/**
 * koffi (3.3.4, the newest) fsyncs descriptors 1 and 2 when the process exits: a
 * static destructor in its base library flushes its own stdout and stderr writers,
 * and flushing one ends in fsync(2). When stdout is a regular file, the exit then
 * waits until everything written to it is on disk: 0.5 s after `npipe listen
 * --format raw > file` of 1 GiB here, in a process that had finished its work.
 *
 * For the CLI's last act, once nothing more is written: a regular file on fd 1 or
 * 2 is replaced by /dev/null (dup2), where that fsync returns at once. Nothing is
 * lost: the data is in the page cache already, as after any exit without fsync.
 * Does nothing unless koffi was loaded (libc), so it never loads it.
 */
export function spareStdioTheExitSync(): void {
  const libc = loadedLibc();
  if (!libc) return;
  let devNull: number | undefined;
  try {
    for (const fd of [1, 2]) {
      if (!fstatSync(fd).isFile()) continue;
      devNull ??= openSync('/dev/null', 'w');
      libc.dup2(devNull, fd);
    }
  } catch {
    // Best effort: at worst the exit waits for the disk, as before.
  } finally {
    if (devNull !== undefined) closeSync(devNull);
  }
}
