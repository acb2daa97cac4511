/**
 * A pipe's key: how a receiver refuses clients that are not on this machine (or,
 * without `allowShared`, not this user), which Node cannot ask Windows to do
 * (libuv creates its pipes without PIPE_REJECT_REMOTE_CLIENTS and offers no
 * GetNamedPipeClientComputerName).
 *
 * A receiver, once listening, writes 32 random bytes (64 hex characters), a
 * newline, its process id and a newline to a key file named after the pipe: in the user's local application data
 * (%LOCALAPPDATA%\npipe\pipe-keys, which only this user, SYSTEM and
 * administrators can read), or with `allowShared` in %ProgramData%\npipe\pipe-keys
 * (readable by every local user; a client reads that one only with allowShared
 * too). Each client reads the file, sends the 64
 * characters first on its connection, and waits for one byte, ACK (0x06), before
 * its first message (a file whose process is gone is skipped: the name may have
 * been taken since); a connection that sends anything else, or nothing for
 * PROOF_TIMEOUT_MS, is dropped. A client on another machine reaches the pipe over
 * SMB but not the file. A receiver that restarts writes a new key, so a client
 * holding the old one is refused and, reading the file again, comes back.
 *
 * For other languages (C, Python): read the file, write its 64 characters, read
 * one byte, then write the format (docs/FORMATS.md, "On Windows").
 */
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { removeAtExit } from '../../util/at-exit.js';

/** The key's length on the wire: 64 lowercase hex characters. */
export const KEY_CHARS = 64;
/** What the receiver answers a good key with. */
export const ACK = 0x06;
/** A connection that has not sent its key by then is dropped. */
export const PROOF_TIMEOUT_MS = 10_000;

/** The folder of key files: the user's own, or (shared) every local user's. */
export function keyFolder(shared: boolean, env: NodeJS.ProcessEnv = process.env): string {
  if (shared) return join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'npipe', 'pipe-keys');
  return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'npipe', 'pipe-keys');
}

/** The key file of pipe `name` (normalised); pipe names are not case-sensitive, so neither is this. */
export function keyPath(name: string, shared: boolean, env: NodeJS.ProcessEnv = process.env): string {
  const id = createHash('sha256').update(name.toLowerCase()).digest('hex').slice(0, 32);
  return join(keyFolder(shared, env), `${id}.key`);
}

/** A new key for pipe `name`, written to its file (replacing a departed receiver's); `remove()` deletes the file. */
export function createKey(name: string, shared: boolean): { key: Buffer; remove(): void } {
  const path = keyPath(name, shared);
  mkdirSync(dirname(path), { recursive: true });
  const key = Buffer.from(randomBytes(KEY_CHARS / 2).toString('hex'), 'latin1');
  writeFileSync(path, `${key.toString('latin1')}\n${process.pid}\n`, { mode: 0o600 });
  // Removed at exit, whatever the exit, unless removed before.
  let undoAtExit: (() => void) | undefined = removeAtExit(path);
  return {
    key,
    remove: () => {
      // Only our own: a receiver that replaced us on the same name keeps its file.
      if (!undoAtExit) return;
      undoAtExit();
      undoAtExit = undefined;
      try {
        if (readFileSync(path).subarray(0, KEY_CHARS).equals(key)) rmSync(path, { force: true });
      } catch {
        // already gone
      }
    },
  };
}

/**
 * The keys of pipe `name` as the client sends them: the user's, then (`shared`) the
 * one a receiver shared with every local user wrote; none while no receiver has
 * written one. Without `shared` a client talks only to a receiver of its own user,
 * as a FIFO sender without allowShared takes only a FIFO no one else may write.
 */
export function readKeys(name: string, shared: boolean): Buffer[] {
  const keys: Buffer[] = [];
  for (const place of shared ? [false, true] : [false]) {
    let text: string;
    try {
      text = readFileSync(keyPath(name, place), 'latin1');
    } catch {
      continue; // not there (yet), or not ours to read: try the next place
    }
    const file = KEY_FILE.exec(text);
    // A key whose receiver has died (killed outright, its file left behind) is no receiver: whoever
    // holds the name now is not the process that wrote it, and must not be sent the key or messages.
    if (file && alive(Number(file[2]))) keys.push(Buffer.from(file[1]!, 'latin1'));
  }
  return keys;
}

/** A key file: the key, then the process id of the receiver that wrote it. */
const KEY_FILE = /^([0-9a-f]{64})\n(\d+)\n$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // there, and someone else's
  }
}

/** Whether `sent` is `key` (in constant time). */
export function keyMatches(sent: Buffer, key: Buffer): boolean {
  return sent.length === key.length && timingSafeEqual(sent, key);
}
