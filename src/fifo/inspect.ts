/**
 * Everything there is to say about a FIFO without touching it: what it is, its
 * mode and owner, its pipe's capacity and the bytes waiting in it, and who holds
 * it open or waits to (`npipe stat`, issue 19 #1: "why is my writer hanging?").
 */
import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FifoNotFoundError, NotFifoError, UnsupportedError } from '../errors.js';
import { fromSystemError, isErrno } from '../sys/errno.js';
import { fifoHolders, type Holder } from './holders.js';
import { describeKind } from './mkfifo.js';
import { peekPipe, type PipeState } from './peek.js';

export interface FifoStatus {
  type: 'fifo';
  /** The absolute path looked at. */
  path: string;
  /** Permission bits as octal text ("0600") and as ls shows them ("rw-------"). */
  mode: string;
  permissions: string;
  owner: { uid: number; user: string | null };
  group: { gid: number; name: string | null };
  capacity: number | null;
  buffered: number | null;
  /** How capacity and buffered were seen (PipeState.how). */
  seen: PipeState['how'];
  readers: Holder[];
  writers: Holder[];
  /** Processes blocked in open(2) on it, waiting for the other side. */
  waiting: { readers: Holder[]; writers: Holder[] };
  /** Processes this one may not look into (other users' without root): they may hold it too. */
  hidden: number;
}

/** The name of `id` in /etc/passwd or /etc/group, or null. */
function nameOf(file: string, id: number): string | null {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , number] = line.split(':');
      if (name && Number(number) === id && number !== '') return name;
    }
  } catch {
    // No such file here (a minimal container): the number alone.
  }
  return null;
}

function permissions(mode: number): string {
  return [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((c, i) => (mode >> shift) & (4 >> i) ? c : '-').join('')).join('');
}

/**
 * The status of the FIFO at `path`. A symbolic link is described, not followed.
 * @throws ERR_NPIPE_NOT_FOUND (missing), ERR_NPIPE_NOT_FIFO (anything else, a symlink too), ERR_NPIPE_PERMISSION,
 *   ERR_NPIPE_UNSUPPORTED (not Linux).
 */
export function inspectFifo(path: string): FifoStatus {
  if (process.platform !== 'linux') throw new UnsupportedError('looking into a FIFO reads /proc and borrows descriptors (pidfd_getfd): Linux only');
  // The folder resolved, the name kept: a symlink at `path` is reported as one.
  let absolute = resolve(path);
  try {
    if (absolute !== '/') absolute = join(realpathSync(dirname(absolute)), basename(absolute));
  } catch {
    // The folder is missing or closed to us: lstat says which, below.
  }
  let st;
  try {
    st = lstatSync(absolute);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new FifoNotFoundError(`${path} does not exist`, { cause: err });
    throw fromSystemError(err, path, 'looking at');
  }
  if (!st.isFIFO()) throw new NotFifoError(`${path} is ${describeKind(st)}, not a FIFO`);
  const holders = fifoHolders(st.dev, st.ino);
  const pipe = peekPipe(absolute, st.dev, st.ino, holders);
  return {
    type: 'fifo',
    path: absolute,
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    permissions: permissions(st.mode),
    owner: { uid: st.uid, user: nameOf('/etc/passwd', st.uid) },
    group: { gid: st.gid, name: nameOf('/etc/group', st.gid) },
    capacity: pipe.capacity,
    buffered: pipe.buffered,
    seen: pipe.how,
    readers: holders.readers,
    writers: holders.writers,
    waiting: holders.waiting,
    hidden: holders.hidden,
  };
}
