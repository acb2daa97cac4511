/**
 * Who has a FIFO open, from /proc (Linux): the processes holding it open for
 * reading and for writing (each descriptor on it, by device and inode), and those
 * blocked in open(2) on it, waiting for the other side (a shell's `echo > fifo`
 * with no reader). Nothing is opened on the FIFO itself: looking never wakes a
 * waiting opener or ends a reader's wait (issue 19 #1).
 *
 * Only what this process may see is reported: another user's descriptors need
 * root (or the same user), and which file a blocked open(2) names is read from the
 * process's memory (/proc/PID/mem), which needs the right to trace it. Processes
 * that could not be looked at are counted, not guessed at.
 */
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

export interface Holder {
  pid: number;
  /** The command line (arguments joined by spaces), or the process name if that is unreadable. */
  command: string;
  /** The descriptor (holders), or undefined for a process still in open(2). */
  fd?: number;
}

export interface FifoHolders {
  readers: Holder[];
  writers: Holder[];
  /** Blocked in open(2) on the FIFO: a reader waits for a writer, a writer for a reader. */
  waiting: { readers: Holder[]; writers: Holder[] };
  /** Processes whose descriptors this process may not look at (other users' without root). */
  hidden: number;
}

const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_RDWR = 0o2;
const AT_FDCWD = -100;

/** open(2)-family syscalls: number -> where its directory, path and flags are among the arguments. */
const OPEN_CALLS: Record<string, Record<number, { dir?: number; path: number; flags?: number; how?: number }>> = {
  x64: { 2: { path: 0, flags: 1 }, 257: { dir: 0, path: 1, flags: 2 }, 437: { dir: 0, path: 1, how: 2 } },
  arm64: { 56: { dir: 0, path: 1, flags: 2 }, 437: { dir: 0, path: 1, how: 2 } },
};

function commandOf(pid: number): string {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '');
    if (cmdline !== '') return Buffer.from(cmdline.replaceAll('\0', ' '), 'latin1').toString('utf8');
  } catch {
    // Gone, or not ours to read: its name then.
  }
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

function sameFile(path: string, dev: number, ino: number): boolean {
  try {
    const st = statSync(path);
    return st.ino === ino && st.dev === dev;
  } catch {
    return false;
  }
}

/** The access mode (O_RDONLY 0, O_WRONLY 1, O_RDWR 2) and, where the kernel says it, the inode of `pid`'s descriptor `fd`, from its fdinfo. */
export function fdInfo(pid: number, fd: number): { mode: number | undefined; ino: number | undefined } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    const flags = /^flags:\s*([0-7]+)/m.exec(text)?.[1];
    const ino = /^ino:\s*(\d+)/m.exec(text)?.[1];
    return { mode: flags === undefined ? undefined : Number.parseInt(flags, 8) & O_ACCMODE, ino: ino === undefined ? undefined : Number(ino) };
  } catch {
    return undefined;
  }
}

/** Up to `length` bytes at `address` in `pid`'s memory, or undefined if they cannot be read. */
function readMemory(pid: number, address: number, length: number): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, address));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The NUL-terminated string at `address` in `pid`'s memory (at most PATH_MAX bytes), or undefined. */
function readString(pid: number, address: number): string | undefined {
  const bytes = readMemory(pid, address, 4096);
  const end = bytes?.indexOf(0) ?? -1;
  return end < 0 ? undefined : bytes!.toString('utf8', 0, end);
}

/**
 * The threads of `pid` blocked opening a FIFO: each one's file and side (see
 * blockedOpen). Every thread is looked at, not only the first: a Node program's
 * fs.open() or createWriteStream() waits in a threadpool thread, a Go program's
 * open in whichever thread runs it.
 */
function blockedOpens(pid: number): { path: string; side: 'read' | 'write' }[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const found = [];
  for (const tid of tids) {
    const blocked = blockedOpen(pid, `/proc/${pid}/task/${tid}`);
    if (blocked) found.push(blocked);
  }
  return found;
}

/**
 * If the thread at `task` (/proc/PID/task/TID) of `pid` is blocked opening a FIFO
 * (wchan wait_for_partner), the file it opens and for which side: `write` for
 * O_WRONLY, `read` for O_RDONLY. Undefined if it is not, or if this process may
 * not see which file. A relative name is resolved from the thread's working
 * directory (or the directory descriptor it names), an absolute one from its root
 * (a chroot, another mount namespace): the file it meant, not the one at that
 * path here.
 */
function blockedOpen(pid: number, task: string): { path: string; side: 'read' | 'write' } | undefined {
  try {
    if (readFileSync(`${task}/wchan`, 'utf8').trim() !== 'wait_for_partner') return undefined;
    const [nr, ...args] = readFileSync(`${task}/syscall`, 'utf8').trim().split(' ');
    const call = OPEN_CALLS[process.arch]?.[Number(nr)];
    if (!call) return undefined;
    const arg = (i: number) => BigInt.asIntN(64, BigInt(args[i]!));
    const name = readString(pid, Number(arg(call.path)));
    if (name === undefined) return undefined;
    let base = `${task}/cwd`;
    if (call.dir !== undefined && !isAbsolute(name)) {
      const dir = Number(BigInt.asIntN(32, arg(call.dir)));
      if (dir !== AT_FDCWD) base = `${task}/fd/${dir}`;
    }
    // openat2 has its flags in a struct open_how, whose first field they are (a u64).
    const how = call.how === undefined ? undefined : readMemory(pid, Number(arg(call.how)), 8);
    const flags = call.flags !== undefined ? Number(arg(call.flags) & 3n) : how?.length === 8 ? Number(how.readBigUInt64LE() & 3n) : undefined;
    // O_RDWR never waits for a partner, so a blocked open is for reading or for writing.
    if (flags === undefined) return undefined;
    const side = flags === O_WRONLY ? 'write' : 'read';
    return { path: join(isAbsolute(name) ? `${task}/root` : base, name), side };
  } catch {
    return undefined;
  }
}

/**
 * Every process holding the FIFO whose device and inode are `dev`/`ino` open, and
 * every process blocked opening it. A descriptor open for reading and writing
 * (O_RDWR) counts on both sides. Linux only (callers check).
 */
export function fifoHolders(dev: number, ino: number): FifoHolders {
  const result: FifoHolders = { readers: [], writers: [], waiting: { readers: [], writers: [] }, hidden: 0 };
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') result.hidden++;
      continue; // ENOENT: it ended meanwhile.
    }
    let command: string | undefined;
    for (const name of fds) {
      const fd = Number(name);
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      // Cheap filters first: sockets, anonymous pipes and the like are never our FIFO,
      // and fdinfo's inode (Linux 5.14+) rules out the rest without stat(2) on their
      // files (which could hang on a stuck NFS or FUSE mount).
      if (!target.startsWith('/')) continue;
      const info = fdInfo(pid, fd);
      if (info?.ino !== undefined && info.ino !== ino) continue;
      if (!sameFile(`/proc/${pid}/fd/${fd}`, dev, ino)) continue;
      command ??= commandOf(pid);
      const mode = info?.mode;
      if (mode !== O_WRONLY) result.readers.push({ pid, command, fd });
      if (mode === O_WRONLY || mode === O_RDWR) result.writers.push({ pid, command, fd });
    }
    // A process with several threads waiting on it is listed once for each side.
    const sides = new Set(blockedOpens(pid).filter((b) => sameFile(b.path, dev, ino)).map((b) => b.side));
    for (const side of sides) {
      const holder = { pid, command: (command ??= commandOf(pid)) };
      (side === 'write' ? result.waiting.writers : result.waiting.readers).push(holder);
    }
  }
  return result;
}
