/**
 * Private container daemons for end-to-end pulls: dockerd and containerd,
 * each with its own socket and roots under a temporary folder, so they run
 * beside anything else on the machine. dockerd runs with no iptables and no
 * bridge. Registry CAs go in certs.d, which dockerd only reads from
 * /etc/docker; they are removed on stop.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnOwned, waitUntil } from './registry.ts';

const run = promisify(execFile);

type Cli = (args: string[], timeoutMs?: number) => Promise<{ stdout: string; stderr: string }>;

export interface Dockerd {
  docker: Cli;
  trustCa(hostPort: string, caCert: string): void;
  stop(): Promise<void>;
}

export interface Containerd {
  /** `ctr` against this containerd. */
  ctr: Cli;
  stop(): Promise<void>;
}

/** Starts `command` and waits until `cli(probe)` succeeds; `stop` ends it and removes `dir`. */
async function startDaemon(dir: string, command: string, args: string[], cli: Cli, probe: string[]): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawnOwned(command, args);
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  await waitUntil(async () => {
    try {
      await cli(probe, 5000);
      return true;
    } catch {
      return false;
    }
  }, 30_000, () => `${command} did not start: ${output.slice(-2000)}`);
  return {
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A mount the daemon left behind; the temporary folder goes with the machine.
      }
    },
  };
}

export async function startDockerd(dir: string): Promise<Dockerd> {
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'docker.sock');
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
  const docker: Cli = (args, timeoutMs = 120_000) => run('docker', args, { env, timeout: timeoutMs });
  const daemon = await startDaemon(dir, 'dockerd', [
    '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'),
    '--iptables=false', '--ip6tables=false', '--bridge=none',
  ], docker, ['version']);
  const certDirs: string[] = [];
  return {
    docker,
    trustCa(hostPort, caCert) {
      const d = join('/etc/docker/certs.d', hostPort);
      mkdirSync(d, { recursive: true });
      copyFileSync(caCert, join(d, 'ca.crt'));
      certDirs.push(d);
    },
    async stop() {
      for (const d of certDirs) rmSync(d, { recursive: true, force: true });
      await daemon.stop();
    },
  };
}

/** containerd, the runtime Kubernetes nodes pull images with, with an empty configuration. */
export async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, '');
  const ctr: Cli = (args, timeoutMs = 120_000) => run('ctr', ['--address', sock, ...args], { timeout: timeoutMs });
  const daemon = await startDaemon(dir, 'containerd', [
    '--config', config, '--address', sock, '--root', join(dir, 'root'), '--state', join(dir, 'state'), '--log-level', 'warn',
  ], ctr, ['version']);
  return { ctr, stop: () => daemon.stop() };
}

export interface Daemons {
  readonly dockerd: Dockerd;
  readonly containerd: Containerd;
  stop(): Promise<void>;
}

/** dockerd and containerd under `dir`, dockerd trusting `caCert` for the registry at `registryHost`. */
export async function startDaemons(dir: string, registryHost: string, caCert: string): Promise<Daemons> {
  const dockerd = await startDockerd(join(dir, 'dockerd'));
  dockerd.trustCa(registryHost, caCert);
  const containerd = await startContainerd(join(dir, 'containerd'));
  return {
    dockerd,
    containerd,
    async stop() {
      await containerd.stop();
      await dockerd.stop();
    },
  };
}
