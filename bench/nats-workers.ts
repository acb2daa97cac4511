/**
 * The plain nats.js baselines of `npm run bench`: the same work as npipe's NATS
 * rows, with nats.js alone (no npipe). npipe's own rows use bench/workers.js with
 * a nats:// URL. Receivers print "ready" once subscribed, then one JSON line.
 */
import { connect } from '@nats-io/transport-node';
import { percentile, timeRoundTrips } from './round-trips.js';

const [role, url, ...args] = process.argv.slice(2) as [string, string, ...string[]];
const { host, port, pathname } = new URL(url);
const subject = pathname.slice(1);
const nc = await connect({ servers: `${host.split(':')[0]}:${port || 4222}` });
const rss = () => process.resourceUsage().maxRSS * 1024;
const print = (result: object) => process.stdout.write(`${JSON.stringify({ ...result, rss: rss() })}\n`);

switch (role) {
  case 'nats-sub': {
    const count = Number(args[0]);
    let n = 0;
    let start = 0n;
    const done = new Promise<void>((resolve) => {
      nc.subscribe(subject, {
        callback: () => {
          if (n === 0) start = process.hrtime.bigint();
          if (++n === count) resolve();
        },
      });
    });
    await nc.flush();
    console.log('ready');
    await done;
    print({ seconds: Number(process.hrtime.bigint() - start) / 1e9, count: n });
    break;
  }
  case 'nats-pub': {
    const [count, size] = args.map(Number) as [number, number];
    const message = Buffer.alloc(size, 120);
    for (let i = 0; i < count; i++) {
      nc.publish(subject, message);
      if (i % 16384 === 16383) await nc.flush(); // the same backpressure as npipe's core sender (about 1 MiB)
    }
    await nc.flush();
    print({});
    break;
  }
  case 'nats-rep': {
    nc.subscribe(subject, {
      callback: (_err, msg) => {
        msg.respond(msg.data);
      },
    });
    await nc.flush();
    console.log('ready');
    await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
    print({});
    break;
  }
  case 'nats-req': {
    const [iterations, size] = args.map(Number) as [number, number];
    const payload = Buffer.alloc(size, 112);
    const latencies = await timeRoundTrips(iterations, () => nc.request(subject, payload, { timeout: 10_000 }));
    print({ p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), latencies: latencies.filter((_, i) => i % 10 === 0) });
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
await nc.close();
