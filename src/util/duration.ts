/**
 * Durations as the `nats` CLI and Go write them (issue 19 #4): a number and a unit,
 * `250ms`, `5s`, `1.5s`, `2m`, `1h`, or a bare whole number in the caller's unit.
 * Used by the CLI's time options and by nats:// URLs' ?ack-wait=.
 */

/** Microseconds per unit. */
const UNITS: Record<string, number> = { us: 1, 'µs': 1, ms: 1_000, s: 1_000_000, m: 60_000_000, h: 3_600_000_000 };

/**
 * `text` in whole units of `unit` (a bare number is already in them), or undefined
 * when it is not a duration, or not a whole number of `unit`s. A time counted in
 * milliseconds takes no microsecond units (us, µs).
 */
export function parseDuration(text: string, unit: 'ms' | 'us'): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)?$/.exec(text);
  if (!m || (m[2] === undefined && m[1]!.includes('.'))) return undefined;
  if (unit === 'ms' && (m[2] === 'us' || m[2] === 'µs')) return undefined;
  const exact = (Number(m[1]) * UNITS[m[2] ?? unit]!) / UNITS[unit]!;
  const whole = Math.round(exact);
  if (!Number.isSafeInteger(whole) || Math.abs(exact - whole) > 1e-6 * Math.max(1, whole)) return undefined;
  return whole;
}
