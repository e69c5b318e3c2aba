#!/usr/bin/env node
// Entry point for `npx scarf-gateway` / a global install. The gateway is
// TypeScript run directly by Node (type stripping), which needs Node >= 22.12.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`scarf-gateway needs Node.js >= 22.12 (this is ${process.version}); use "npm start", which runs the pinned Node 24.\n`);
  process.exit(1);
}
const { main } = await import('../src/cli.ts');
const { hideBin } = await import('yargs/helpers');
await main(hideBin(process.argv));
