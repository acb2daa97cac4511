/**
 * The CLI as shipped: dist/bundle/cli/npipe.cjs, CommonJS, one file per command
 * loaded on demand, built from tsc's output (dist/src). A one-shot `npipe send`
 * is all start-up (issue 18 #6): Node loads one CommonJS file much faster than the
 * ~40 ES modules behind it (measured here: 190 -> 150 ms, against 105 ms for
 * `node -e 0`). The library itself stays ES modules in dist/src.
 *
 * The bundle sits at the same depth as dist/src/cli, so the paths the CLI finds
 * from its own location (package.json, dist/examples) are the same in both.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

const dir = 'dist/bundle/cli';
// Files of an earlier build whose module is gone must not linger beside this one.
rmSync(dir, { recursive: true, force: true });

const src = resolve('dist/src');

/**
 * Writes modules.json beside the chunks: for each chunk, the modules of dist/src
 * it holds. Tests that check which code a CLI call loads (test/architecture.test.ts,
 * the Wine tests) read it to name modules rather than chunks.
 */
const manifest = {
  name: 'npipe-chunk-manifest',
  generateBundle(_options, bundle) {
    const modules = {};
    for (const [file, chunk] of Object.entries(bundle)) {
      if (chunk.type === 'chunk') modules[file] = chunk.moduleIds.map((id) => relative(src, id).split('\\').join('/'));
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/modules.json`, `${JSON.stringify(modules, null, 1)}\n`);
  },
};

export default {
  input: { npipe: 'dist/src/cli/bin.js' },
  // Packages stay where npm put them (koffi is native; NATS is loaded only for nats:// URLs).
  external: (id) => id.startsWith('node:') || !(id.startsWith('.') || id.startsWith('/')),
  // A Node built-in imported by a module whose code this chunk does not use is not
  // loaded (node:crypto cost a one-shot send ~7 ms through the fifo barrel).
  treeshake: { moduleSideEffects: 'no-external' },
  plugins: [manifest],
  output: {
    dir,
    format: 'cjs',
    entryFileNames: '[name].cjs',
    chunkFileNames: '[name].cjs',
    // import() of a package stays import() (NATS packages are ES modules).
    dynamicImportInCjs: true,
    generatedCode: 'es2015',
  },
  onwarn(warning) {
    // A warning is a build failure: an unresolved import would be a missing module at run time.
    throw new Error(`rollup: ${warning.code}: ${warning.message}`);
  },
};
