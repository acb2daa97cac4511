/**
 * Which driver serves an address: the one place that looks at an address's form.
 * Entries are tried in order; the first whose `claims` matches is loaded (on first
 * use, so a process that only uses FIFOs never loads the NATS client) and kept.
 * Adding a transport is one line here, above the FIFO entry, which takes every
 * address no other driver claims (a FIFO path is any path).
 */
import { isNatsUrl } from './drivers/nats/url.js';
import type { Driver } from './drivers/types.js';

interface Entry {
  readonly name: string;
  /** Cheap and synchronous: looks at the address's form only, opens nothing. */
  claims(address: string): boolean;
  load(): Promise<{ driver: Driver }>;
  loaded?: Promise<Driver>;
}

const entries: Entry[] = [
  { name: 'nats', claims: isNatsUrl, load: () => import('./drivers/nats/index.js') },
  { name: 'fifo', claims: () => true, load: () => import('./drivers/fifo/index.js') },
];

function entryFor(address: string): Entry {
  return entries.find((entry) => entry.claims(address))!;
}

/** The driver that serves `address`, loaded on first use. */
export function driverFor(address: string): Promise<Driver> {
  const entry = entryFor(address);
  entry.loaded ??= entry.load().then((module) => module.driver);
  return entry.loaded;
}

/** The name of the driver that serves `address` ('fifo', 'nats'), without loading it. */
export function driverName(address: string): string {
  return entryFor(address).name;
}

/** The names of every registered driver, in the order they are tried. */
export function registeredDrivers(): string[] {
  return entries.map((entry) => entry.name);
}
