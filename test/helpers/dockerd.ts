/**
 * A private dockerd for end-to-end pulls: its own socket, data and exec
 * roots under a temporary folder, no iptables and no bridge, so it runs
 * beside anything else on the machine. Registry CAs go in certs.d, which
 * dockerd only reads from /etc/docker; they are removed on stop.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnOwned, waitUntil } from './registry.ts';

const run = promisify(execFile);

export interface Dockerd {
  docker(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  trustCa(hostPort: string, caCert: string): void;
  stop(): Promise<void>;
}

export async function startDockerd(dir: string): Promise<Dockerd> {
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'docker.sock');
  const child: ChildProcess = spawnOwned('dockerd', [
    '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'),
    '--iptables=false', '--ip6tables=false', '--bridge=none',
  ]);
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
  const docker = (args: string[], timeoutMs = 120_000) => run('docker', args, { env, timeout: timeoutMs });
  await waitUntil(async () => {
    try {
      await docker(['version'], 5000);
      return true;
    } catch {
      return false;
    }
  }, 30_000, () => `dockerd did not start: ${output.slice(-2000)}`);
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
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A mount dockerd left behind; the temporary folder goes with the machine.
      }
    },
  };
}
