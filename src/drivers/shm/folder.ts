/**
 * Where shared-memory names live: /dev/shm/npipe-<uid>/<name>/ (the base may be
 * moved with NPIPE_SHM_DIR, for tests), every folder 0700, owned by the user,
 * never a symlink, checked with lstat before each use. A name's folder holds:
 *
 *   owner                 the receiver's pid, flock'ed by it while it lives
 *   control               the receiver's FIFO: announcements and doorbells
 *   <pid>-<hex>.ring      a sender's segment, until the receiver maps it
 *   <pid>-<hex>.bell      that sender's doorbell FIFO, until the receiver opens it
 *
 * The receiver unlinks a segment and its bell as soon as it has them open, so a
 * running lane leaves nothing in the folder but `owner` and `control`; whatever a
 * killed process leaves is reclaimed by the next receiver or sender (a pid that is
 * gone, an owner lock nobody holds).
 */
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { UnsafeFifoError, UnsupportedError } from '../../errors.js';
import { fromSystemError, isErrno } from '../../sys/errno.js';
import { euid } from '../../sys/euid.js';
import { processGone } from '../../fifo/replydir.js';
import { tryLock } from '../../fifo/lock.js';
import { removeQuietly } from '../../util/at-exit.js';

/** A sender's files: `<pid>-<16 hex digits>.ring` and `.bell`. */
export const SEGMENT_NAME = /^(\d{1,10})-[0-9a-f]{16}\.(ring|bell)$/;

function base(): string {
  return process.env.NPIPE_SHM_DIR || '/dev/shm';
}

/** The user's folder: <base>/npipe-<uid>. */
export function userFolder(): string {
  return join(base(), `npipe-${euid()}`);
}

export function nameFolder(name: string): string {
  return join(userFolder(), name);
}

/**
 * Refuses a folder that is not a real directory of the user's, closed to others.
 * @throws ERR_NPIPE_UNSAFE
 */
export function checkFolder(path: string, st: Stats): void {
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new UnsafeFifoError(`${path} is not a directory (or is a symlink); npipe keeps shared memory only in a folder of its own: remove it (rm ${path})`);
  }
  if (st.uid !== euid()) {
    throw new UnsafeFifoError(`${path} is owned by uid ${st.uid}, not by you (uid ${euid()}); its owner could read or write your messages: remove it, or use another NPIPE_SHM_DIR`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UnsafeFifoError(`${path} can be used by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 700 ${path}`);
  }
}

/**
 * `path` as a checked folder: made 0700 when missing and `create`; undefined when
 * missing and not `create`.
 * @throws ERR_NPIPE_UNSAFE, ERR_NPIPE_UNSUPPORTED (no /dev/shm), ERR_NPIPE_SYSTEM
 */
function folder(path: string, create: boolean): string | undefined {
  if (create) {
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (err) {
      if (isErrno(err, 'ENOENT') && path === userFolder()) {
        throw new UnsupportedError(`${base()} does not exist: shared memory (shm://) needs a tmpfs there (Linux), or NPIPE_SHM_DIR naming one`);
      }
      if (!isErrno(err, 'EEXIST')) throw fromSystemError(err, path, 'creating');
    }
  }
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return undefined;
  checkFolder(path, st);
  return path;
}

/** The user's folder, made if missing, checked. */
export function ensureUserFolder(): string {
  return folder(userFolder(), true)!;
}

/** A name's folder, made if missing (a receiver), checked. */
export function ensureNameFolder(name: string): string {
  ensureUserFolder();
  return folder(nameFolder(name), true)!;
}

/** A name's folder if it is there (a sender looking for its receiver), checked; else undefined. */
export function findNameFolder(name: string): string | undefined {
  if (!folder(userFolder(), false)) return undefined;
  return folder(nameFolder(name), false);
}

/** Removes the files in `dir` of senders that are gone (a pid that no longer exists). */
export function reclaimSegments(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = SEGMENT_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    // Ours are removed by whoever of us made them; a live sender's are in use.
    if (pid === process.pid || !processGone(pid)) continue;
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st || st.uid !== euid()) continue;
    removeQuietly(path);
  }
}

/**
 * Removes what a name's receiver keeps in its folder (`control`, `owner`), then
 * the folder if nothing else is left in it (a live sender's files keep it).
 */
export function removeReceiverFiles(dir: string): void {
  removeQuietly(join(dir, 'control'));
  removeQuietly(join(dir, 'owner'));
  try {
    rmdirSync(dir);
  } catch {
    // a sender's files are still there (or a receiver just came): left alone
  }
}

/**
 * Name folders under the user's folder whose receiver is gone (nobody holds the
 * owner lock): their owner, control FIFO and dead senders' files are removed, and
 * the folder too when nothing else is left in it. `except`: a name this process uses.
 */
export function reclaimNames(except?: string): void {
  const user = userFolder();
  let names: string[];
  try {
    names = readdirSync(user);
  } catch {
    return;
  }
  for (const name of names) {
    if (name === except) continue;
    const dir = join(user, name);
    const st = lstatSync(dir, { throwIfNoEntry: false });
    if (!st || !st.isDirectory() || st.isSymbolicLink() || st.uid !== euid()) continue;
    if (!ownerGone(join(dir, 'owner'))) continue;
    reclaimSegments(dir);
    removeReceiverFiles(dir);
  }
}

/** Whether the receiver that owned a name is gone: its owner file is there and nobody holds its lock. */
function ownerGone(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    // No owner file: no receiver (one makes it first thing), only senders' leftovers, if any.
    // A receiver making the folder this instant may lose the race (its open of `owner` then
    // fails, and it can be opened again); the folder is removed only once empty.
    return isErrno(err, 'ENOENT');
  }
  try {
    if (!fstatSync(fd).isFile()) return false;
    return tryLock(fd, 'exclusive'); // closing the descriptor lets go of the lock at once
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
