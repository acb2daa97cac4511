/**
 * Timing round trips, as every round-trip row of the bench does it (npipe, plain
 * Node, zeromq.js, shm://, nats.js): the first WARM_UP are not recorded (the JIT
 * has not compiled the path yet), each of the rest is timed alone.
 */

const WARM_UP = 200;

/** The value at fraction `p` of `sorted` (ascending). */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** Makes WARM_UP + `iterations` round trips one after another; the last `iterations` latencies in µs, sorted. */
export async function timeRoundTrips(iterations: number, roundTrip: () => Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < iterations + WARM_UP; i++) {
    const t = process.hrtime.bigint();
    await roundTrip();
    if (i >= WARM_UP) latencies.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return latencies.sort((a, b) => a - b);
}
