/**
 * What this process must undo however it exits (process.exit, an uncaught error,
 * the end of the event loop): files to unlink, synchronously. Reply FIFOs, topic
 * subscribers' FIFOs and shared-memory segments are removed so; what a SIGKILL
 * leaves is reclaimed by the next process that finds it.
 */
import { unlinkSync } from 'node:fs';

const hooks = new Set<() => void>();
let installed = false;

/** Runs `undo` at exit unless the returned function is called first (the thing was closed). */
export function atExit(undo: () => void): () => void {
  hooks.add(undo);
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const hook of hooks) {
        try {
          hook();
        } catch {
          // best effort: the next process reclaims what is left
        }
      }
    });
  }
  return () => hooks.delete(undo);
}

/** Unlinks `path`, quietly if it is gone already (or not ours to remove). */
export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already: nothing to do
  }
}

/** Unlinks `path` at exit unless the returned function is called first. */
export function removeAtExit(path: string): () => void {
  return atExit(() => removeQuietly(path));
}
