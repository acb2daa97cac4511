/**
 * The few libc calls Node does not expose: mkfifo(3); fcntl(2) for the pipe
 * capacity and ioctl(2) FIONREAD for the bytes in a pipe; flock(2) and dup(2) for
 * the writers' lock; poll(2), to wait for one descriptor without the event loop
 * (the raw splice lane); memset(3) with a length of 0, for a buffer's address
 * (aligned buffers); mmap(2) and munmap(2) with a view of the mapping, and
 * posix_fallocate(3) for its pages (the shared-memory lane, drivers/shm); mmap(2) and
 * mprotect(2) for a page of machine code (streaming-copy.ts); and, on Linux only,
 * splice(2), tee(2) and pipe2(2).
 * Called through koffi, so no compiler and no child process is needed. Loaded on
 * first use, so that importing npipe never fails on a platform where koffi cannot
 * load libc: only the calls that need it do.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { UnsupportedError } from '../errors.js';

interface Libc {
  mkfifo(path: string, mode: number): number;
  fcntlGet(fd: number, cmd: number): number;
  fcntlSet(fd: number, cmd: number, arg: number): number;
  flock(fd: number, operation: number): number;
  dup(fd: number): number;
  dup2(fd: number, to: number): number;
  /** write(fd, buffer, length): the bytes written, or -1 with errno set. */
  write(fd: number, buffer: Uint8Array, length: number): number;
  /** mallopt(3) (glibc); undefined where the C library has none. */
  mallopt: ((param: number, value: number) => number) | undefined;
  /** ioctl(fd, request, int *out). */
  ioctlInt(fd: number, request: number, out: number[]): number;
  /** splice(fd_in, NULL, fd_out, NULL, len, flags); Linux only, undefined elsewhere. */
  splice: ((fdIn: number, offIn: null, fdOut: number, offOut: null, length: number, flags: number) => number) | undefined;
  /** tee(fd_in, fd_out, len, flags): copies bytes between two pipes without consuming them; Linux only. */
  tee: ((fdIn: number, fdOut: number, length: number, flags: number) => number) | undefined;
  /** pipe2(fds, flags): an anonymous pipe, [read end, write end] written into `fds`; Linux only. */
  pipe2: ((fds: number[], flags: number) => number) | undefined;
  /**
   * pidfd_open(2) and pidfd_getfd(2) through syscall(2) (glibc before 2.36 has no
   * wrappers): a copy of another process's descriptor, the same open file (Linux 5.6+).
   */
  pidfdOpen: ((pid: number) => number) | undefined;
  pidfdGetfd: ((pidfd: number, fd: number) => number) | undefined;
  /** poll(fds, nfds, timeout): `fds` holds nfds `struct pollfd` (int fd; short events; short revents), 8 bytes each. */
  poll(fds: Uint8Array, nfds: number, timeout: number): number;
  /**
   * mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0): the mapping, or
   * undefined with errno set (MAP_FAILED). `view` is an ArrayBuffer over it, no copy;
   * it must not be touched after munmap (the process would crash): its owner drops
   * every view before unmapping.
   */
  mmapShared(fd: number, length: number): { pointer: unknown; view: ArrayBuffer } | undefined;
  munmap(pointer: unknown, length: number): number;
  /**
   * `code` (machine code for this CPU) in a private page of its own, written while
   * the page is read+write, then made read+execute (mprotect; never writable and
   * executable at once), as a function called through koffi with the C `signature`
   * given. Undefined where the system refuses executable memory (SELinux's
   * execmem, PaX): callers then do without. Linux only (MAP_ANONYMOUS differs elsewhere).
   */
  executable: ((code: Uint8Array, signature: string) => ((...args: unknown[]) => unknown) | undefined) | undefined;
  /**
   * posix_fallocate(fd, offset, len): gives the file real pages for that range now (on tmpfs,
   * where ftruncate reserves none); returns 0 or an errno (ENOSPC). Undefined where there is none.
   */
  posixFallocate: ((fd: number, offset: number, length: number) => number) | undefined;
  /** The address of a buffer's first byte (memset(buffer, 0, 0) returns it). */
  addressOf(buffer: Uint8Array): number;
  errno(): number;
}

let libc: Libc | undefined;

/** splice(2) and tee(2) flags (Linux, where those calls exist). */
export const SPLICE_F_MOVE = 1;
export const SPLICE_F_NONBLOCK = 2;

const LIBRARY_NAMES: Record<string, string[]> = {
  linux: ['libc.so.6', 'libc.so'],
  darwin: ['libSystem.B.dylib', '/usr/lib/libSystem.B.dylib'],
};

type Koffi = typeof import('koffi');

/**
 * koffi, its native module loaded directly where its place is known: koffi's own
 * loader (`require('koffi')`) took 16-17 ms here to find the native module, which
 * itself loads in 4.5 (issue 18 #6: a one-shot `npipe send` of lines loads koffi for
 * the writers' lock). koffi is pinned to one version, whose glibc build for Linux
 * x64/arm64 lives in `@koromix/koffi-linux-<arch>/linux_<arch>/koffi.node`; npipe uses
 * only the native module's own functions (load, func, errno). Anywhere else (musl,
 * macOS, a layout that differs), koffi's loader as usual.
 */
function requireKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      const native = require(`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`) as Koffi;
      if (typeof native.load === 'function' && typeof native.errno === 'function') return native;
    } catch {
      // Not there, or not loadable (musl): koffi's loader finds the right one.
    }
  }
  return require('koffi') as Koffi;
}

export function loadLibc(): Libc {
  if (libc) return libc;
  const names = LIBRARY_NAMES[process.platform];
  if (!names) throw new UnsupportedError(`npipe needs a POSIX system (Linux or macOS); this is ${process.platform}`);
  let koffi: Koffi;
  try {
    koffi = requireKoffi();
  } catch (cause) {
    throw new UnsupportedError('cannot load koffi, which npipe uses to call mkfifo and fcntl; run npm ci again', {
      cause,
    });
  }
  let lastError: unknown;
  for (const name of names) {
    try {
      const lib = koffi.load(name);
      const fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
      libc = {
        mkfifo: lib.func('int mkfifo(const char *path, uint32_t mode)') as (p: string, m: number) => number,
        fcntlGet: (fd, cmd) => fcntl(fd, cmd) as number,
        fcntlSet: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg) as number,
        flock: lib.func('int flock(int fd, int operation)') as (fd: number, op: number) => number,
        dup: lib.func('int dup(int fd)') as (fd: number) => number,
        dup2: lib.func('int dup2(int fd, int to)') as (fd: number, to: number) => number,
        write: lib.func('intptr_t write(int fd, const void *buf, size_t count)') as Libc['write'],
        mallopt: orUndefined(() => lib.func('int mallopt(int param, int value)') as (param: number, value: number) => number),
        ioctlInt: lib.func('int ioctl(int fd, unsigned long request, _Out_ int *out)') as (fd: number, r: number, o: number[]) => number,
        splice:
          process.platform === 'linux'
            ? (lib.func('intptr_t splice(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)') as Libc['splice'])
            : undefined,
        tee:
          process.platform === 'linux'
            ? (lib.func('intptr_t tee(int fd_in, int fd_out, size_t len, unsigned int flags)') as Libc['tee'])
            : undefined,
        pipe2: process.platform === 'linux' ? (lib.func('int pipe2(_Out_ int *fds, int flags)') as Libc['pipe2']) : undefined,
        ...pidfdCalls(process.platform === 'linux' ? (lib.func('long syscall(long number, ...)') as Syscall) : undefined),
        poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)') as Libc['poll'],
        ...mmapCalls(koffi, lib),
        posixFallocate: orUndefined(
          () => lib.func('int posix_fallocate(int fd, int64_t offset, int64_t len)') as (fd: number, offset: number, length: number) => number,
        ),
        addressOf: ((memset) => (buffer: Uint8Array) => Number(memset(buffer, 0, 0)))(
          lib.func('uintptr_t memset(void *s, int c, size_t n)') as (b: Uint8Array, c: number, n: number) => number | bigint,
        ),
        errno: () => koffi.errno(),
      };
      return libc;
    } catch (err) {
      lastError = err;
    }
  }
  throw new UnsupportedError(`cannot load the C library (${names.join(', ')})`, { cause: lastError });
}

/** <sys/mman.h>: the same on Linux (x64, arm64) and macOS. */
const PROT_READ_WRITE = 0x3;
const MAP_SHARED = 0x1;
const MAP_FAILED = 0xffffffffffffffffn;

/** <sys/mman.h> on Linux: PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS. */
const PROT_READ_EXEC = 0x5;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const CODE_PAGE = 4096;

function mmapCalls(koffi: Koffi, lib: ReturnType<Koffi['load']>): Pick<Libc, 'mmapShared' | 'munmap' | 'executable'> {
  const mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as (...args: unknown[]) => unknown;
  const munmap = lib.func('int munmap(void *addr, size_t length)') as (pointer: unknown, length: number) => number;
  const mapped = (pointer: unknown) => pointer !== null && BigInt(koffi.address(pointer)) !== MAP_FAILED;
  return {
    mmapShared: (fd, length) => {
      const pointer = mmap(null, length, PROT_READ_WRITE, MAP_SHARED, fd, 0);
      if (!mapped(pointer)) return undefined;
      return { pointer, view: koffi.view(pointer, length) };
    },
    munmap,
    executable:
      process.platform === 'linux'
        ? (code, signature) => {
            if (code.length === 0 || code.length > CODE_PAGE) return undefined;
            const mprotect = lib.func('int mprotect(void *addr, size_t len, int prot)') as (pointer: unknown, length: number, prot: number) => number;
            const pointer = mmap(null, CODE_PAGE, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0);
            if (!mapped(pointer)) return undefined;
            new Uint8Array(koffi.view(pointer, CODE_PAGE)).set(code);
            if (mprotect(pointer, CODE_PAGE, PROT_READ_EXEC) !== 0) {
              munmap(pointer, CODE_PAGE);
              return undefined;
            }
            // Kept mapped for the life of the process: the function is cached by its caller.
            return koffi.decode(pointer, koffi.proto(signature)) as (...args: unknown[]) => unknown;
          }
        : undefined,
  };
}

type Syscall = (number: number, ...args: unknown[]) => number | bigint;
/** <asm-generic/unistd.h>: the same numbers on every architecture since Linux 5.3. */
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;

function pidfdCalls(syscall: Syscall | undefined): Pick<Libc, 'pidfdOpen' | 'pidfdGetfd'> {
  if (!syscall) return { pidfdOpen: undefined, pidfdGetfd: undefined };
  return {
    pidfdOpen: (pid) => Number(syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0)),
    pidfdGetfd: (pidfd, fd) => Number(syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', fd, 'unsigned int', 0)),
  };
}

/** The C library if something has loaded it already (never loads it, nor koffi). */
export function loadedLibc(): Libc | undefined {
  return libc;
}

function orUndefined<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno as Record<string, number>).map(([name, value]) => [value, name]),
);

/** An Error shaped like Node's own fs errors (code, errno, syscall, path), for an errno from libc. */
export function errnoError(errno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const err: NodeJS.ErrnoException = new Error(`${code}: ${syscall}${path === undefined ? '' : ` '${path}'`}`);
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}
