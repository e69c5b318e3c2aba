// config/scarf-gateway.service and config/gateway.env: the unit reloads with
// SIGHUP, restarts on failure, is hardened, and every variable of its
// environment file is a flag the gateway knows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { NODE_FLAGS } from '../src/node-flags.ts';

const unit = readFileSync(new URL('../config/scarf-gateway.service', import.meta.url), 'utf8');
const env = readFileSync(new URL('../config/gateway.env', import.meta.url), 'utf8');

test('the unit reloads with SIGHUP, restarts on failure and is hardened', () => {
  for (const line of ['ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'DynamicUser=yes', 'NoNewPrivileges=yes',
    'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'EnvironmentFile=/etc/scarf-gateway/gateway.env']) {
    assert.ok(unit.split('\n').includes(line), line);
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

test('npm start and the unit run node with the same flags (src/node-flags.ts)', () => {
  const start = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string;
  assert.equal(start, ['node', ...NODE_FLAGS, 'src/cli.ts'].join(' '));
  const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  assert.equal(exec, ['ExecStart=/opt/scarf-gateway/node_modules/.bin/node', ...NODE_FLAGS, '/opt/scarf-gateway/src/cli.ts'].join(' '));
});
