/**
 * The private folder where request/reply clients keep their reply FIFOs:
 * $XDG_RUNTIME_DIR/npipe, else /run/user/<uid>/npipe, else <tmpdir>/npipe-<uid>;
 * mode 0700, owned by the user, never a symlink (checked before every use). When
 * such a path is taken by something that is not the user's (another user made
 * /tmp/npipe-<uid> first: issue 15 #7), a folder of the user's own,
 * <tmpdir>/npipe-<uid>-XXXXXX (mkdtemp), checked the same way, is used instead.
 * Reply FIFOs are named c-<pid>-<16 random hex digits>.fifo: the random part keeps a reused pid from
 * colliding with a dead client's leftover; the pid lets the next client or server
 * that finds a leftover see that its owner is gone and remove it.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, unlinkSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { InvalidArgumentError, UnsafeFifoError } from '../errors.js';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { euid } from '../sys/euid.js';
import { mkfifoSync } from './mkfifo.js';
import { checkStats } from './open.js';

const REPLY_NAME = /^c-(\d+)-[0-9a-f]{16}\.fifo$/;

/** The reply folders a user `uid` may have, in order of preference. */
export function replyDirectories(uid = euid()): string[] {
  const dirs: string[] = [];
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (uid === euid() && xdg && isAbsolute(xdg)) dirs.push(join(xdg, 'npipe'));
  dirs.push(join('/run/user', String(uid), 'npipe'), join(tmpdir(), `npipe-${uid}`));
  return [...new Set(dirs)];
}

/** A fallback reply folder of `uid`: <tmpdir>/npipe-<uid>-XXXXXX, as mkdtemp names it. */
function isFallbackDirectory(dir: string, uid: number): boolean {
  return dirname(dir) === tmpdir() && new RegExp(`^npipe-${uid}-[A-Za-z0-9]{6}$`).test(basename(dir));
}

/** Whether `dir` is one of the reply folders `uid` may have (the list above, or a fallback). */
export function isReplyDirectory(dir: string, uid: number): boolean {
  return replyDirectories(uid).includes(dir) || isFallbackDirectory(dir, uid);
}

/** Not the user's at all (someone else's, a symlink, a file): a reason to use another folder, not to fail. */
function notOurs(st: Stats, uid: number): boolean {
  return st.isSymbolicLink() || !st.isDirectory() || st.uid !== uid;
}

function checkDirectory(dir: string, st: Stats, uid: number): void {
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new UnsafeFifoError(`${dir} is not a directory (or is a symlink); remove it so npipe can create its reply folder`);
  }
  if (st.uid !== uid) {
    throw new UnsafeFifoError(`${dir} is owned by uid ${st.uid}, not ${uid}; remove it so npipe can create its reply folder`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UnsafeFifoError(`${dir} can be used by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 700 ${dir}`);
  }
}

/**
 * The caller's reply folder, created 0700 if missing, checked if present.
 * @throws ERR_NPIPE_UNSAFE when it is a symlink, someone else's, or open to others.
 */
export function ensureReplyDirectory(): string {
  const uid = euid();
  let lastError: unknown;
  let taken = false;
  for (const dir of replyDirectories(uid)) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) {
        lastError = err; // e.g. no /run/user/<uid>: try the next place
        continue;
      }
    }
    const st = lstatSync(dir);
    if (notOurs(st, uid)) {
      // Planted by someone else (in a sticky /tmp we cannot remove it): never used, and no reason to give up.
      taken = true;
      continue;
    }
    checkDirectory(dir, st, uid); // ours but open to others: the user's to fix (chmod), so say so
    return dir;
  }
  if (taken) return fallbackDirectory(uid);
  throw fromSystemError(lastError, replyDirectories(uid).join(' or '), 'creating the reply folder');
}

/** A private folder of the user's own in <tmpdir>: one left by an earlier client, or a new one (mkdtemp, 0700). */
function fallbackDirectory(uid: number): string {
  let names: string[] = [];
  try {
    names = readdirSync(tmpdir());
  } catch {
    // unreadable: make a new one
  }
  for (const name of names.sort()) {
    const dir = join(tmpdir(), name);
    if (!isFallbackDirectory(dir, uid)) continue;
    try {
      const st = lstatSync(dir);
      if (notOurs(st, uid) || (st.mode & 0o077) !== 0) continue;
      return dir;
    } catch {
      // removed meanwhile
    }
  }
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), `npipe-${uid}-`));
  } catch (err) {
    throw fromSystemError(err, tmpdir(), 'creating a private reply folder');
  }
  checkDirectory(dir, lstatSync(dir), uid); // mkdtemp makes it 0700; checked like any other
  return dir;
}

/** A new reply FIFO (0600) in the caller's reply folder. */
export function createReplyFifo(dir: string): string {
  const path = join(dir, `c-${process.pid}-${randomBytes(8).toString('hex')}.fifo`);
  mkfifoSync(path, { mode: 0o600 });
  return path;
}

/** Whether no process `pid` exists (kill(pid, 0) answers ESRCH); one of another user's counts as there. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return isErrno(err, 'ESRCH');
  }
}

/**
 * Removes reply FIFOs left by clients that are gone (killed before they could
 * clean up): all of them in `dir`, or only `only`.
 */
export function removeStaleReplyFifos(dir: string, only?: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = only === undefined ? readdirSync(dir) : [only];
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = REPLY_NAME.exec(name);
    if (!m || !processGone(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch {
      // Another cleaner got there first.
    }
  }
  return removed;
}

/**
 * Checks a reply address named by a client before a server writes to it: an
 * absolute path to a reply FIFO inside a reply folder (0700, not a symlink), both
 * owned by the server's own user, or, when the server runs as root, by the
 * requesting user (the folder's owner). Returns that uid, for the open to check
 * the FIFO's owner again on the descriptor.
 * @throws ERR_NPIPE_UNSAFE for any other path.
 */
export function checkReplyPath(path: string): number {
  if (typeof path !== 'string' || !isAbsolute(path) || normalize(path) !== path) {
    throw new InvalidArgumentError(`reply address ${JSON.stringify(path)} is not a normalized absolute path`);
  }
  if (!REPLY_NAME.test(basename(path))) {
    throw new UnsafeFifoError(`reply address ${path} is not named like an npipe reply FIFO; refused`);
  }
  const dir = dirname(path);
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    throw fromSystemError(err, dir, 'checking the reply folder');
  }
  const server = euid();
  const uid = server === 0 ? st.uid : server;
  if (!isReplyDirectory(dir, uid)) {
    throw new UnsafeFifoError(`reply address ${path} is outside the reply folders of uid ${uid}; refused`);
  }
  checkDirectory(dir, st, uid);
  return uid;
}

/**
 * checkReplyPath, and the FIFO itself now (lstat: a FIFO, not a link, owned by
 * that uid, not writable by others): what a server checks before it queues a
 * request for the address. The open checks it again on the descriptor.
 * @throws ERR_NPIPE_UNSAFE, ERR_NPIPE_INVALID_ARG (see checkReplyPath), ERR_NPIPE_NOT_FIFO,
 *   ERR_NPIPE_NOT_FOUND (no FIFO there: its client is gone, or never was).
 */
export function checkReplyFifo(path: string): number {
  const uid = checkReplyPath(path);
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw fromSystemError(err, path, 'checking the reply FIFO');
  }
  checkStats(st, path, false, uid);
  return uid;
}
