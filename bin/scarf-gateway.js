#!/usr/bin/env node
// Entry point of `npm start`, the systemd unit and `npx scarf-gateway`. The
// gateway is TypeScript run directly by Node (type stripping, Node >= 22.12);
// chokidar 6, the manifest watcher, needs Node >= 22.22.
import module from 'node:module';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 22)) {
  process.stderr.write(`scarf-gateway needs Node.js >= 22.22 (this is ${process.version}); use "npm start", which runs the pinned Node 24.\n`);
  process.exit(1);
}
// Node strips types with a WebAssembly module whose memory stays with the
// process (about 30 MB of RSS). With the compile cache, sources stripped
// once are read back from the cache and that module is never loaded. This
// file is JavaScript so that the cache is on before the first TypeScript
// file is read. The cache goes to $NODE_COMPILE_CACHE (the unit sets it),
// else to the temporary directory; node checks every entry against the
// file's content, and runs on without a cache it cannot write.
module.enableCompileCache?.();
// Installed as a package, the sources sit under node_modules, where Node
// does not strip types (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING): this
// package's own .ts files are stripped here, with Node's own stripper.
const root = new URL('../', import.meta.url).href;
if (root.includes('/node_modules/')) {
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const strip = (source) => {
    // The API warns once that it is experimental: not on stderr, whose
    // lines are the operational log's JSON.
    const emitWarning = process.emitWarning;
    process.emitWarning = () => {};
    try {
      return module.stripTypeScriptTypes(source);
    } finally {
      process.emitWarning = emitWarning;
    }
  };
  module.registerHooks({
    load(url, context, nextLoad) {
      if (!url.startsWith(root) || !url.endsWith('.ts') || url.startsWith(`${root}node_modules/`)) return nextLoad(url, context);
      return { format: 'module', source: strip(readFileSync(fileURLToPath(url), 'utf8')), shortCircuit: true };
    },
  });
}
const { main } = await import('../src/cli.ts');
const { hideBin } = await import('yargs/helpers');
await main(hideBin(process.argv));
