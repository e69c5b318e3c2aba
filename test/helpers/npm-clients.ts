/** The npm clients of the end-to-end tests (the machine's and npm 12), and how to run one. */
import { execFile } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** An npm: its version, and its script, run by this Node. */
export interface NpmClient {
  readonly name: string;
  readonly version: string;
  readonly script: string;
}

/**
 * The npm clients tested: the machine's (the one that came with this Node,
 * else the first on PATH outside node_modules/.bin) and npm 12 from
 * devDependencies (as `npm12`; its bin takes the name `npm` in
 * node_modules/.bin). Both run on this Node.
 */
export const npmClients: readonly NpmClient[] = [npmClient(machineNpm()), npmClient(new URL('../../node_modules/npm12/bin/npm-cli.js', import.meta.url).pathname)];

function machineNpm(): string {
  const dirs = [dirname(process.execPath), ...(process.env.PATH ?? '').split(delimiter).filter((d) => !d.endsWith(join('node_modules', '.bin')))];
  for (const dir of dirs) {
    try {
      return realpathSync(join(dir, 'npm'));
    } catch {
      // Not in this one.
    }
  }
  throw new Error('no npm next to node or on PATH');
}

function npmClient(cli: string): NpmClient {
  const { version } = JSON.parse(readFileSync(join(dirname(cli), '..', 'package.json'), 'utf8'));
  return { name: `npm ${version}`, version, script: cli };
}

/** Runs `client` with `args` in `cwd`, the npm settings of an enclosing `npm test` left out. */
export function npm(args: string[], cwd: string, client = npmClients[0]) {
  const env: Record<string, string | undefined> = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
  for (const k of Object.keys(env)) if (k.startsWith('npm_config_') && !['npm_config_update_notifier', 'npm_config_fund'].includes(k)) delete env[k];
  return run(process.execPath, [client.script, ...args], { cwd, env, timeout: 120_000 });
}
