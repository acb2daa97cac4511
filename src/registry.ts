/**
 * Which driver serves an address: the one place that looks at an address's form.
 * Entries are tried in order; the first whose `claims` matches is loaded (on first
 * use, so a process that only uses FIFOs never loads the NATS client) and kept.
 * Adding a transport is one line here, above the FIFO entry, which takes every
 * address no other driver claims (a FIFO path is any path).
 *
 * An entry says which platforms its driver runs on: elsewhere driverFor() refuses
 * the address (ERR_NPIPE_UNSUPPORTED) without loading the driver, so Windows never
 * loads the FIFO driver's koffi bindings.
 */
import { UnsupportedError } from './errors.js';
import { isNatsUrl } from './drivers/nats/scheme.js';
import { isWindowsPipe, normalizeWindowsPipe } from './drivers/winpipe/address.js';
import { isShmAddress, shmName } from './drivers/shm/address.js';
import type { Driver } from './drivers/types.js';

interface Entry {
  readonly name: string;
  /** Cheap and synchronous: looks at the address's form only, opens nothing. */
  claims(address: string): boolean;
  /** Throws ERR_NPIPE_INVALID_ARG for an address of this form that is malformed (checked on every platform). */
  check?(address: string): void;
  /** Whether the driver runs on `platform` (process.platform); absent: everywhere. */
  runsOn?(platform: NodeJS.Platform): boolean;
  /** What to tell a user of such an address where the driver does not run. */
  elsewhere?: string;
  load(): Promise<{ driver: Driver }>;
  loaded?: Promise<Driver>;
}

const entries: Entry[] = [
  { name: 'nats', claims: isNatsUrl, load: () => import('./drivers/nats/index.js') },
  {
    name: 'winpipe',
    claims: isWindowsPipe,
    check: normalizeWindowsPipe,
    runsOn: (platform) => platform === 'win32',
    elsewhere: 'Windows named pipes need Windows; on this system use a FIFO path',
    load: () => import('./drivers/winpipe/index.js'),
  },
  {
    name: 'shm',
    claims: isShmAddress,
    check: shmName,
    runsOn: (platform) => platform === 'linux',
    elsewhere: 'shared memory (shm://) needs Linux; on this system use a FIFO path',
    load: () => import('./drivers/shm/index.js'),
  },
  {
    name: 'fifo',
    claims: () => true,
    runsOn: (platform) => platform !== 'win32',
    elsewhere: 'FIFO paths are POSIX; on Windows use \\\\.\\pipe\\<name>',
    load: () => import('./drivers/fifo/index.js'),
  },
];

function entryFor(address: string): Entry {
  return entries.find((entry) => entry.claims(address))!;
}

/**
 * The driver that serves `address`, loaded on first use.
 * @throws ERR_NPIPE_INVALID_ARG (a malformed address of a claimed form),
 * ERR_NPIPE_UNSUPPORTED (its driver does not run on this platform; nothing is loaded).
 */
export function driverFor(address: string): Promise<Driver> {
  const entry = entryFor(address);
  try {
    entry.check?.(address);
  } catch (err) {
    return Promise.reject(err);
  }
  if (entry.runsOn && !entry.runsOn(process.platform)) return Promise.reject(new UnsupportedError(entry.elsewhere!));
  entry.loaded ??= entry.load().then((module) => module.driver);
  return entry.loaded;
}

/** The name of the driver that serves `address` ('fifo', 'nats', 'winpipe', 'shm'), without loading it. */
export function driverName(address: string): string {
  return entryFor(address).name;
}

/** The names of every registered driver, in the order they are tried. */
export function registeredDrivers(): string[] {
  return entries.map((entry) => entry.name);
}

/** The registered drivers that declare they do not run on `platform` (default: this one). */
export function driversElsewhere(platform: NodeJS.Platform = process.platform): string[] {
  return entries.filter((entry) => entry.runsOn && !entry.runsOn(platform)).map((entry) => entry.name);
}
