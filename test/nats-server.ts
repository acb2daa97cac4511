/**
 * A real nats-server for tests and benchmarks: JetStream on, a free loopback port,
 * a temporary store, and restart on the same port and store.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';

let binary: string | undefined;
/** NATS_SERVER, else nats-server on PATH, else Debian's /usr/sbin/nats-server (sbin is not on every user's PATH). */
function natsServerBinary(): string {
  binary ??=
    process.env.NATS_SERVER ??
    (spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0 || !existsSync('/usr/sbin/nats-server') ? 'nats-server' : '/usr/sbin/nats-server');
  return binary;
}

/** Whether nats-server can be run here. */
export function natsServerAvailable(): boolean {
  return spawnSync(natsServerBinary(), ['--version'], { stdio: 'ignore' }).status === 0;
}

export const NATS_INSTALL_HINT = 'nats-server is not installed (Debian/Ubuntu: sudo apt-get install -y nats-server; or set NATS_SERVER to its path)';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A signal that would end this process without its 'exit' event (and so without
 * NatsServer's reaping) ends it through process.exit() instead, with the exit
 * status the signal would have given. Not for a signal the process already handles.
 */
let signalsHandled = false;
function exitOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    if (process.listenerCount(signal) === 0) process.once(signal, () => process.exit(128 + osConstants.signals[signal]));
  }
}

export class NatsServer {
  readonly port: number;
  readonly store: string;
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(port: number, store: string) {
    this.port = port;
    this.store = store;
  }

  /**
   * Starts a server; `extra` adds command-line options (e.g. ['--max_payload', '8MB']).
   * It does not outlive this process: if the process ends without dispose() (a
   * crash, an EPIPE on stdout, process.exit(), or SIGTERM / SIGINT / SIGHUP, which
   * `node --test` sends a test file that overruns its timeout), its exit kills the
   * server and removes the store. Only SIGKILL of this process leaves it running.
   */
  static async start(extra: string[] = []): Promise<NatsServer> {
    const server = new NatsServer(await freePort(), mkdtempSync(join(tmpdir(), 'npipe-nats-')));
    server.#extra = extra;
    exitOnSignals();
    process.once('exit', server.#reap);
    await server.#spawn();
    return server;
  }

  #extra: string[] = [];
  readonly #reap = () => {
    this.#child?.kill('SIGKILL');
    rmSync(this.store, { recursive: true, force: true });
  };

  /** `nats://127.0.0.1:PORT/subject` */
  url(subject: string, query = ''): string {
    return `nats://127.0.0.1:${this.port}/${subject}${query ? `?${query}` : ''}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async #spawn(): Promise<void> {
    const child = spawn(natsServerBinary(), ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.store, ...this.#extra], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start in 20 s:\n${this.#log}`)), 20_000);
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        this.#log += d;
        if (this.#log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}):\n${this.#log}`));
      });
    });
  }

  /** Stops the server: SIGKILL (a crash) or SIGTERM (a clean shutdown). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** Stops it and starts it again on the same port with the same store. */
  async restart(signal: NodeJS.Signals = 'SIGKILL', downMs = 0): Promise<void> {
    await this.stop(signal);
    this.#log = '';
    if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.#spawn();
  }

  /** Stops it and removes its store. */
  async dispose(): Promise<void> {
    process.removeListener('exit', this.#reap);
    await this.stop('SIGKILL');
    rmSync(this.store, { recursive: true, force: true });
  }
}
