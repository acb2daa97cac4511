import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { EXIT, UsageError, type CliIO, type Command } from './args.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));

export const demoCommand: Command = {
  name: 'demo',
  help: `Usage: npipe demo

Runs examples/write_to_named_pipe and examples/read_from_named_pipe as two
separate processes that share nothing but the FIFO my_pipe, in a fresh temporary
folder (on Windows: the named pipe \\\\.\\pipe\\npipe-demo-<random>). The writer
starts first and waits for the reader; the reader prints
"I pid [M] received a message => Hello from pid [N]". Prints both programs'
lines, prefixed with their names, and exits 0 when both succeed.

Options:
  -h, --help   show this help`,
  options: {},
  async run(_values, positionals, io) {
    if (positionals.length > 0) throw new UsageError('npipe demo takes no arguments (see npipe demo --help)');
    const dir = mkdtempSync(join(tmpdir(), 'npipe-demo-'));
    try {
      io.stdout.write(`demo folder: ${dir}\n`);
      // On Windows the pipe is a name, not a file in the folder: one of its own, so demos never meet.
      const pipe = process.platform === 'win32' ? [`\\\\.\\pipe\\npipe-demo-${randomUUID()}`] : [];
      const writer = runExample('write_to_named_pipe.js', 'writer', dir, io, pipe);
      // The writer goes first and waits for a reader, as in the chapter's two terminals.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const reader = runExample('read_from_named_pipe.js', 'reader', dir, io, pipe);
      const codes = await Promise.all([writer, reader]);
      return codes.every((code) => code === 0) ? EXIT.ok : EXIT.failure;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

function runExample(file: string, label: string, cwd: string, io: CliIO, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [join(examples, file), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const onStop = () => child.kill('SIGTERM');
  io.stop.addEventListener('abort', onStop, { once: true });
  io.stdout.write(`[${label}] started as pid ${child.pid}\n`);
  for (const [stream, out] of [
    [child.stdout, io.stdout],
    [child.stderr, io.stderr],
  ] as const) {
    createInterface({ input: stream }).on('line', (line) => out.write(`[${label}] ${line}\n`));
  }
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      io.stop.removeEventListener('abort', onStop);
      if (code !== 0) io.stderr.write(`[${label}] exited with ${signal ?? `code ${code}`}\n`);
      resolve(code ?? 1);
    });
  });
}
