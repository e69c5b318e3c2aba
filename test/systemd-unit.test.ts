// config/scarf-gateway.service and config/gateway.env: the unit reloads with
// SIGHUP, restarts on failure, is hardened, keeps journald from dropping the
// feed, and systemd-analyze reads it without a warning; every variable of its
// environment file is a flag the gateway knows. The launcher it runs
// (bin/scarf-gateway.js) uses the compile cache, and runs installed as a
// package too. npm 12 lets the pinned Node's install script run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { NODE_FLAGS } from '../src/node-flags.ts';
import { request } from './helpers/http-client.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const LAUNCHER = new URL('../bin/scarf-gateway.js', import.meta.url).pathname;
const unit = readFileSync(new URL('../config/scarf-gateway.service', import.meta.url), 'utf8');
const env = readFileSync(new URL('../config/gateway.env', import.meta.url), 'utf8');

test('the unit reloads with SIGHUP, stops through its main process, restarts on failure, is hardened, and journald drops none of its feed', () => {
  for (const line of ['ExecReload=/bin/kill -HUP $MAINPID', 'KillMode=mixed', 'Restart=on-failure', 'DynamicUser=yes', 'NoNewPrivileges=yes',
    'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'EnvironmentFile=/etc/scarf-gateway/gateway.env']) {
    assert.ok(unit.split('\n').includes(line), line);
  }
  // journald's default limit (10,000 lines in 30 s) drops the lines of a busy gateway: off for this service.
  const service = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]'));
  assert.match(service, /^LogRateLimitIntervalSec=0$/m, 'LogRateLimitIntervalSec=0 in [Service]');
});

test("systemd's own parser takes every line of the unit (systemd-analyze verify)", () => {
  // Installed where this checkout is, so that the programs it starts exist.
  const dir = mkdtempSync(join(tmpdir(), 'gw-unit-'));
  try {
    const file = join(dir, 'scarf-gateway.service');
    writeFileSync(file, unit.replaceAll('/opt/scarf-gateway/', ROOT));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined, 'systemd-analyze (Debian package systemd) must be installed');
    // An unknown or misspelled key is only a warning: none may be printed.
    assert.equal(r.stderr + r.stdout, '');
    assert.equal(r.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every GATEWAY_* variable in gateway.env is a flag of the CLI', () => {
  const help = spawnSync(process.execPath, [new URL('../src/cli.ts', import.meta.url).pathname, '--help'], { encoding: 'utf8' }).stdout;
  const names = [...env.matchAll(/^#?\s*GATEWAY_([A-Z_]+)=/gm)].map((m) => m[1]);
  assert.ok(names.length >= 8);
  for (const name of names) {
    const flag = '--' + name.toLowerCase().replaceAll('_', '-');
    assert.match(help, new RegExp(`${flag}\\b`), flag);
  }
});

test('npm start and the unit run the launcher with the same node flags (src/node-flags.ts)', () => {
  const start = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string;
  assert.equal(start, ['node', ...NODE_FLAGS, 'bin/scarf-gateway.js'].join(' '));
  const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  assert.equal(exec, ['ExecStart=/opt/scarf-gateway/node_modules/.bin/node', ...NODE_FLAGS, '/opt/scarf-gateway/bin/scarf-gateway.js'].join(' '));
  // The compile cache survives restarts in the service's own cache directory.
  assert.ok(unit.split('\n').includes('CacheDirectory=scarf-gateway'));
  assert.ok(unit.split('\n').includes('Environment=NODE_COMPILE_CACHE=%C/scarf-gateway'));
});

test('every dependency with an install script is approved or denied in allowScripts', () => {
  // npm 12 skips the install scripts allowScripts does not approve, and the
  // pinned Node 24 is put in place by the `node` package's preinstall.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));
  const scripted = Object.entries(lock.packages as Record<string, { hasInstallScript?: boolean }>)
    .filter(([, p]) => p.hasInstallScript === true)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  assert.ok(scripted.includes('node'));
  assert.deepEqual(Object.keys(pkg.allowScripts ?? {}).sort(), [...new Set(scripted)].sort());
  assert.equal(pkg.allowScripts?.node, true);
});

test('the launcher keeps stripped sources in the compile cache, and reads them back', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gateway-cache-'));
  try {
    // Without NODE_COMPILE_CACHE the cache goes to the temporary directory: the launcher turns it on.
    const run = () => spawnSync(process.execPath, [LAUNCHER, '--help'], { encoding: 'utf8', env: { ...process.env, NODE_COMPILE_CACHE: '', TMPDIR: tmp } });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const cached = readdirSync(join(tmp, 'node-compile-cache'), { recursive: true }).length;
    assert.ok(cached > 0, 'nothing cached');
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('installed as a package, under node_modules where Node strips no types, the launcher serves', { timeout: 60_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gateway-installed-'));
  try {
    // What `npm install` puts in place: the packed files, under node_modules.
    const pack = spawnSync('npm', ['pack', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    // npm 12's --json output is not npm 11's: the one file it wrote.
    const [tarball] = readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
    const installed = join(tmp, 'node_modules', 'scarf-gateway-ts');
    mkdirSync(installed, { recursive: true });
    const untar = spawnSync('tar', ['-xzf', join(tmp, tarball), '-C', installed, '--strip-components=1'], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules')); // its dependencies: this checkout's
    const launcher = join(installed, 'bin', 'scarf-gateway.js');
    const manifest = join(installed, 'config', 'manifest.json');

    const validate = spawnSync(process.execPath, [launcher, 'validate', manifest], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(validate.status, 0, validate.stderr);
    assert.match(validate.stdout, /: ok \(9 rules/);
    assert.equal(validate.stderr, '', 'nothing but the operational log on stderr (no experimental-API warning)');

    const child = spawn(process.execPath, [launcher, '--manifest', manifest, '--port', '0', '--admin-port', '-1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stderr! }).on('line', (line) => {
          const l = JSON.parse(line) as { msg: string; port: number };
          if (l.msg === 'listening') resolve(l.port);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
      });
      const res = await request(port, { path: '/tool-1.4.0.tgz', host: 'dl.example.com' });
      assert.equal(res.status, 307);
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
