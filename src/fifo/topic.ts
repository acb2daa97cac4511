/**
 * A topic on disk (issue 20): a folder in which each subscriber keeps a FIFO of its
 * own, `s-<pid>-<16 hex digits>.fifo`, and publishers write every message into each
 * of them. The folder is made mode 0700 and checked before every use as reply
 * folders are (a directory, not a symlink, the user's own, not open to others): a
 * topic is private to its user, so nobody else can read its messages or inject any.
 *
 * A subscriber makes its FIFO under a joining name (`j-...`), opens it for reading,
 * and only then renames it to its `s-` name: a publisher that sees the name can
 * always open it, and one that cannot (ENXIO: no reader) knows the subscriber is gone.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, UnsafeFifoError } from '../errors.js';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { euid } from '../sys/euid.js';
import { processGone } from './replydir.js';
import { removeQuietly } from '../util/at-exit.js';

const SUBSCRIBER = /^s-(\d+)-[0-9a-f]{16}(?:-(block|drop|disconnect))?\.fifo$/;
const JOINING = /^j-(\d+)-[0-9a-f]{16}(?:-(block|drop|disconnect))?\.fifo$/;

/**
 * A subscriber's policy for when it does not keep up (transport/types.ts,
 * NamedPolicy), as its FIFO's name says it: `-block`, `-drop`, `-disconnect`, or
 * nothing (the publisher's default).
 */
export type NamedPolicy = 'block' | 'drop' | 'disconnect';

/**
 * Makes the topic folder `dir` (mode 0700) if it is missing, and checks it.
 * @throws ERR_NPIPE_UNSAFE (a symlink, not a directory, someone else's, open to others),
 *   ERR_NPIPE_NOT_FOUND (its parent folder is missing), ERR_NPIPE_PERMISSION, ERR_NPIPE_INVALID_ARG.
 */
export function ensureTopic(dir: string): void {
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('a topic is a folder path: a non-empty string');
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw fromSystemError(err, dir, 'creating the topic folder');
  }
  checkTopic(dir);
}

/** Checks the topic folder `dir` as ensureTopic() does, without making it. */
export function checkTopic(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    throw fromSystemError(err, dir, 'looking at the topic folder');
  }
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new UnsafeFifoError(`the topic ${dir} is not a folder (or is a symlink); a topic is a folder npipe makes: remove it or choose another path`);
  }
  const uid = euid();
  if (st.uid !== uid) throw new UnsafeFifoError(`the topic folder ${dir} is owned by uid ${st.uid}, not by you (uid ${uid}); it will not be used`);
  if ((st.mode & 0o077) !== 0) {
    throw new UnsafeFifoError(`the topic folder ${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 700 ${dir}`);
  }
}

/** A new subscriber's two names: the one it joins under, and the one publishers see once it reads. */
export function subscriberNames(policy?: NamedPolicy): { joining: string; name: string } {
  const tail = `${process.pid}-${randomBytes(8).toString('hex')}${policy === undefined ? '' : `-${policy}`}.fifo`;
  return { joining: `j-${tail}`, name: `s-${tail}` };
}

/** The subscribers' FIFO names in `dir` now, with their pids and the policy each asked for (if any). */
export function listSubscribers(dir: string): Array<{ name: string; pid: number; policy: NamedPolicy | undefined }> {
  const found: Array<{ name: string; pid: number; policy: NamedPolicy | undefined }> = [];
  for (const name of readdirSync(dir)) {
    const m = SUBSCRIBER.exec(name);
    if (m) found.push({ name, pid: Number(m[1]), policy: m[2] as NamedPolicy | undefined });
  }
  return found;
}

/** Removes `name` from `dir` if the process that made it is gone; true if it was removed (or already was). */
export function removeIfGone(dir: string, name: string): boolean {
  const m = SUBSCRIBER.exec(name) ?? JOINING.exec(name);
  if (!m || !processGone(Number(m[1]))) return false;
  removeQuietly(join(dir, name)); // or another publisher or subscriber removed it first
  return true;
}

/** Removes every subscriber FIFO in `dir` (joining ones too) whose process is gone (SIGKILLed before it could clean up). */
export function removeGoneSubscribers(dir: string): void {
  for (const name of readdirSync(dir)) if (SUBSCRIBER.test(name) || JOINING.test(name)) removeIfGone(dir, name);
}
