/**
 * Headless Chromium, which .ci/run installs: the real browser, for what
 * browsers enforce (image decoding, referrers, CORS).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Chromium loads `url`, with each host name in `hosts` (port 80) sent to
 * that port on 127.0.0.1, and prints the DOM once the page has loaded and
 * its scripts have run (a virtual-time budget of 10 s, which passes at once
 * when nothing is pending). `profile` keeps the browser's cache between calls.
 */
export async function pageDom(url: string, hosts: Record<string, number>, profile: string): Promise<string> {
  const rules = Object.entries(hosts).map(([host, port]) => `MAP ${host}:80 127.0.0.1:${port}`).join(', ');
  const { stdout } = await run('chromium', [
    '--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`, `--host-resolver-rules=${rules}`, '--virtual-time-budget=10000', '--dump-dom', url,
  ], { timeout: 60_000 });
  return stdout;
}
