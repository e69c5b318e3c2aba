// The analytics feed's writer (src/analytics/line-writer.ts): every line
// arrives whole and in order, through batch boundaries, oversized and
// multi-byte lines, and a slow sink. The primary's relay of the workers'
// lines (src/analytics/line-relay.ts) passes on whole lines only; workers
// sharing one pipe through it: test/analytics.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, readSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { LineRelay } from '../../src/analytics/line-relay.ts';
import { LineWriter, type LineWriterOptions } from '../../src/analytics/line-writer.ts';
import { tempDir } from '../helpers/gateway-process.ts';

const WRITER = new URL('../../src/analytics/line-writer.ts', import.meta.url).pathname;
const RELAY = new URL('../../src/analytics/line-relay.ts', import.meta.url).pathname;

/** Line `i`: JSON with a payload of `size` characters (`é` is two bytes in UTF-8). */
function line(i: number, size: number, char = 'x'): string {
  return JSON.stringify({ i, payload: char.repeat(size) }) + '\n';
}

function parsed(text: string): { i: number; payload: string }[] {
  // A file a reopen left before its first line was written.
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'the feed ends with a whole line');
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
}

test('lines arrive whole and in order across batches, with oversized and multi-byte lines', async () => {
  // Missing directories are made.
  const file = join(tempDir('gw-writer-'), 'sub', 'deeper', 'feed.jsonl');
  const writer = new LineWriter(file, { batchBytes: 1024 });
  const sizes = [10, 500, 1013, 1014, 3000, 0, 700];
  const expected: string[] = [];
  for (let i = 0; i < 2000; i++) {
    // Multi-byte characters make a line's byte length differ from its length.
    const l = line(i, sizes[i % sizes.length], i % 3 === 0 ? 'é' : 'x');
    expected.push(l);
    writer.write(l);
  }
  await writer.close();
  assert.equal(readFileSync(file, 'utf8'), expected.join(''));
});

test('a line written alone is on disk within the flush delay, before close', async () => {
  const file = join(tempDir('gw-writer-'), 'feed.jsonl');
  const writer = new LineWriter(file, { maxDelayMs: 20 });
  writer.write(line(1, 5));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(readFileSync(file, 'utf8'), line(1, 5));
  await writer.close();
});

test('flushSync: a process that exits at once after it (an unexpected error) has written every line; without it, the batch not yet sealed is lost', () => {
  for (const flush of [true, false]) {
    const file = join(tempDir('gw-writer-'), 'feed.jsonl');
    const script = `
      import { LineWriter } from ${JSON.stringify(WRITER)};
      const writer = new LineWriter(${JSON.stringify(file)}, { batchBytes: 4096, maxDelayMs: 60000 });
      for (let i = 0; i < 1000; i++) writer.write(JSON.stringify({ i, payload: 'x'.repeat(50) }) + '\\n');
      ${flush ? 'if (!writer.flushSync(5000)) process.exit(2);' : ''}
      process.exit(1);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 1, child.stderr);
    const written = parsed(readFileSync(file, 'utf8')).map((l) => l.i);
    if (flush) assert.deepEqual(written, Array.from({ length: 1000 }, (_, i) => i));
    else assert.ok(written.length < 1000, `without flushSync ${written.length} of 1000 lines were written`);
  }
});

/** Runs `count` lines of `size` through a LineWriter on stdout in a child process. */
function childWriter(count: number, size: number, options: object): string {
  return `
    import { LineWriter } from ${JSON.stringify(WRITER)};
    const writer = new LineWriter(1, ${JSON.stringify(options)});
    for (let i = 0; i < ${count}; i++) writer.write(JSON.stringify({ pid: process.pid, i, payload: 'y'.repeat(${size}) }) + '\\n');
    await writer.close();
    process.stderr.write(JSON.stringify({ blockingWrites: writer.blockingWrites }));
  `;
}

/**
 * Reads a child's stdout slowly (pausing `pauseMs` after every chunk), so
 * its pipe fills up and writers must wait; resolves with the exit code and
 * the bytes.
 */
async function readSlowly(child: ChildProcess, pauseMs = 1): Promise<{ code: unknown; text: string }> {
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    child.stdout!.pause();
    setTimeout(() => child.stdout!.resume(), pauseMs);
  });
  // 'close' comes after the process exited and its stdout ended.
  const code = await new Promise((resolve) => child.on('close', resolve));
  return { code, text: Buffer.concat(chunks).toString('utf8') };
}

test('a slow reader: the writer waits for it (counted for /metrics) and no line is lost', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', childWriter(20_000, 200, { batchBytes: 4096, maxQueuedBytes: 16_384 })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const { code, text } = await readSlowly(child, 20);
  assert.equal(code, 0);
  const lines = parsed(text);
  assert.equal(lines.length, 20_000);
  assert.deepEqual(new Set(lines.map((l) => l.i)).size, 20_000);
  assert.ok(JSON.parse(stderr).blockingWrites > 0, `the writer waited for the reader: ${stderr}`);
});

/** Lines written as the gateway writes them, a few per turn of the event loop, so that writes are under way while more lines come. */
function servingWriter(count: number, size: number): string {
  return `
    import { LineWriter } from ${JSON.stringify(WRITER)};
    const writer = new LineWriter(1, { maxQueuedBytes: 262_144 });
    for (let i = 0; i < ${count};) {
      for (let k = 0; k < 50 && i < ${count}; k++, i++) writer.write(JSON.stringify({ i, payload: 'y'.repeat(${size}) }) + '\\n');
      await new Promise((resolve) => setImmediate(resolve));
    }
    await writer.close();
  `;
}

/** Every line whole and in order, 0 to count - 1. */
function assertWholeInOrder(text: string, count: number): void {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'the feed ends with a whole line');
  const broken = lines.filter((l) => !/^\{"i":\d+,"payload":"y+"\}$/.test(l));
  assert.deepEqual(broken.map((l) => l.slice(0, 80)), [], `${broken.length} broken lines`);
  const order = lines.map((l) => JSON.parse(l).i);
  assert.equal(order.length, count);
  assert.ok(order.every((i, k) => i === k), `out of order from line ${order.findIndex((i, k) => i !== k)}`);
}

// A slow reader of a pipe or a socket (stdout under systemd is a socket to journald). The writer used to
// write batches while one was still being written: both took parts of each, which broke lines (10-34 of
// 30,000 through a socket, 2 through a pipe) and put batches out of order.
test('a slow reader of a socket, while the writer serves: every line arrives whole and in order', { timeout: 60_000 }, async () => {
  // node's spawn gives the child a socket pair as stdout.
  const child = spawn(process.execPath, ['--input-type=module', '-e', servingWriter(30_000, 300)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const { code, text } = await readSlowly(child, 5);
  assert.equal(code, 0);
  assertWholeInOrder(text, 30_000);
});

test('a slow reader of a pipe, while the writer serves: every line arrives whole and in order', { timeout: 60_000 }, async () => {
  // A shell pipe into a reader that takes a chunk every 5 ms and passes it on.
  const slowCat = "process.stdin.on('data', (c) => { process.stdout.write(c); process.stdin.pause(); setTimeout(() => process.stdin.resume(), 5); });";
  const child = spawn('sh', ['-c', '"$NODE" --input-type=module -e "$WRITER_SCRIPT" | "$NODE" -e "$SLOW_CAT"'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE: process.execPath, WRITER_SCRIPT: servingWriter(30_000, 300), SLOW_CAT: slowCat },
  });
  const { code, text } = await readSlowly(child, 0);
  assert.equal(code, 0);
  assertWholeInOrder(text, 30_000);
});

// A reader that stops for a while (journald busy, a consumer restarting) behind a socket:
// until the feed is `maxQueuedBytes` behind, requests go on. The writer used to write a pipe or socket
// on the event loop, where the first batch past the kernel's buffer (a few hundred KiB) waited for the
// reader, and every request with it.
test('a reader that stops: the writer serves on, its lines waiting up to the bound, then all arrive in order', { timeout: 60_000 }, async () => {
  const count = 20_000;
  const script = `
    import { LineWriter } from ${JSON.stringify(WRITER)};
    import { performance } from 'node:perf_hooks';
    const writer = new LineWriter(1);
    let worst = 0;
    for (let i = 0; i < ${count};) {
      const start = performance.now();
      for (let k = 0; k < 50 && i < ${count}; k++, i++) writer.write(JSON.stringify({ i, payload: 'y'.repeat(300) }) + '\\n');
      worst = Math.max(worst, performance.now() - start);
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.stderr.write(JSON.stringify({ worst, blockingWrites: writer.blockingWrites }) + '\\n');
    await writer.close();
  `;
  // node's spawn gives the child a socket pair as stdout; nothing reads it until the child has served.
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  for (let waited = 0; !stderr.includes('\n') && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  const served = stderr;
  const read = readSlowly(child, 0);
  child.stdout.resume();
  const { code, text } = await read;
  assert.equal(code, 0);
  assert.ok(served.includes('\n'), 'the child served 6 MB of lines with nobody reading them');
  const { worst, blockingWrites } = JSON.parse(served);
  assert.equal(blockingWrites, 0);
  assert.ok(worst < 200, `no turn of the event loop waited for the reader: the longest took ${worst} ms`);
  assertWholeInOrder(text, count);
});

test('a sink without room (ENOSPC): told once, and past the bound the writer waits for room instead of failing or dropping', { timeout: 60_000 }, async () => {
  // /dev/full refuses every write with ENOSPC, and never gets room: the child blocks for good once past its bound.
  const script = `
    import { LineWriter } from ${JSON.stringify(WRITER)};
    const writer = new LineWriter('/dev/full', { batchBytes: 1024, maxDelayMs: 10, maxQueuedBytes: 4096, onFull: (code) => process.stderr.write(String(code) + '\\n') });
    writer.write('x'.repeat(100) + '\\n');
    // The first write is refused; the writer tries again later.
    setTimeout(() => {
      process.stderr.write('serving\\n');
      for (let i = 0; i < 100; i++) writer.write('y'.repeat(100) + '\\n');
      process.stderr.write('not blocked\\n');
    }, 300);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  let exit: number | null = null;
  child.on('exit', (code) => (exit = code));
  // However slowly the child starts: until it has written past its bound, then half a second more.
  for (let waited = 0; !stderr.includes('serving') && exit === null && waited < 20_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGKILL');
  // It neither crashed nor went past the bound: it waits in the 10 KB write, having said ENOSPC once.
  assert.equal(exit, null, stderr);
  assert.equal(stderr, 'ENOSPC\nserving\n');
});

test('a sink that fails for good (EPIPE): the process stops with the error, also while it waits for room', { timeout: 30_000 }, async () => {
  for (const maxQueuedBytes of [32 * 1024 * 1024, 4096]) {
    const script = `
      import { LineWriter } from ${JSON.stringify(WRITER)};
      const writer = new LineWriter(1, { batchBytes: 1024, maxDelayMs: 10, maxQueuedBytes: ${maxQueuedBytes} });
      setInterval(() => { for (let i = 0; i < 100; i++) writer.write('y'.repeat(100) + '\\n'); }, 5);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /analytics feed: EPIPE/);
  }
});

test('the relay passes on whole lines, split anywhere, and drops the start of a line a pipe ended in', async () => {
  const file = join(tempDir('gw-relay-'), 'feed.jsonl');
  const dropped: number[] = [];
  const relay = new LineRelay(file, (bytes) => dropped.push(bytes));
  const a = new PassThrough();
  const b = new PassThrough();
  relay.add(a);
  relay.add(b);
  // Pieces cut inside lines and inside a two-byte character (é is C3 A9).
  const text = line(1, 10, 'é') + line(2, 3);
  const bytes = Buffer.from(text);
  const cut = bytes.indexOf(0xa9);
  a.write(bytes.subarray(0, cut));
  b.write(line(3, 5));
  a.write(bytes.subarray(cut));
  b.end(Buffer.from('{"i":4,"payl'));
  a.end();
  await relay.close();
  assert.deepEqual(parsed(readFileSync(file, 'utf8')).map((l) => l.i).sort(), [1, 2, 3]);
  assert.deepEqual(dropped, [12]);
});

test('the relay, behind a slow reader: it waits for it (counted for /metrics) and no line is lost', { timeout: 60_000 }, async () => {
  const script = `
    import { PassThrough } from 'node:stream';
    import { LineRelay } from ${JSON.stringify(RELAY)};
    const relay = new LineRelay(1, () => {}, { batchBytes: 4096, maxQueuedBytes: 16_384 });
    const pipe = new PassThrough();
    relay.add(pipe);
    for (let i = 0; i < 20_000; i++) pipe.write(JSON.stringify({ pid: process.pid, i, payload: 'y'.repeat(200) }) + '\\n');
    pipe.end();
    await relay.close();
    process.stderr.write(JSON.stringify({ blockingWrites: relay.blockingWrites }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const { code, text } = await readSlowly(child, 20);
  assert.equal(code, 0, stderr);
  assert.deepEqual(new Set(parsed(text).map((l) => l.i)).size, 20_000);
  assert.ok(JSON.parse(stderr).blockingWrites > 0, `the writer waited for the reader: ${stderr}`);
});

/** 100 lines, a rename and a reopen, 100 more, then close: the line numbers in the renamed file and in the new one. */
async function aroundReopen(options: LineWriterOptions, beforeRename: (writer: LineWriter) => void = () => undefined): Promise<{ old: number[]; now: number[] }> {
  const file = join(tempDir('gw-reopen-'), 'feed.jsonl');
  const writer = new LineWriter(file, options);
  for (let i = 0; i < 100; i++) writer.write(line(i, 50));
  beforeRename(writer);
  renameSync(file, `${file}.1`);
  assert.equal(writer.reopen(), true);
  for (let i = 100; i < 200; i++) writer.write(line(i, 50));
  await writer.close();
  return { old: parsed(readFileSync(`${file}.1`, 'utf8')).map((l) => l.i), now: parsed(readFileSync(file, 'utf8')).map((l) => l.i) };
}

test('reopen: after a rename, lines go to a new file at the path, none lost; a file descriptor is kept', async () => {
  // Batches already sealed may be written to the renamed file, or to the new one.
  const { old, now } = await aroundReopen({ batchBytes: 1024 });
  assert.deepEqual([...old, ...now].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
  assert.ok(now.every((i) => i >= old.length), 'the new file starts where the old one ends');
  assert.ok(now.includes(100) && now.includes(199));
  const onFd = new LineWriter(1);
  assert.equal(onFd.reopen(), false);
});

test('reopen: lines written before it go to the old file once written (flushSync), and to the new one while they wait in the batch', async () => {
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
  // A batch that neither fills nor times out before the reopen.
  const options = { batchBytes: 64 * 1024, maxDelayMs: 60_000 };
  const flushed = await aroundReopen(options, (writer) => assert.equal(writer.flushSync(5000), true));
  assert.deepEqual([flushed.old, flushed.now], [range(0, 100), range(100, 200)]);
  const waiting = await aroundReopen(options);
  assert.deepEqual([waiting.old, waiting.now], [[], range(0, 200)]);
});

test('reopen onto a FIFO while a write to the file is in flight: the rest goes to the FIFO in order, and close does not hang', { timeout: 10_000 }, async () => {
  const dir = tempDir('gw-reopen-fifo-');
  const file = join(dir, 'feed.jsonl');
  const writer = new LineWriter(file, { batchBytes: 1024 });
  // Sealed batches: their write is in flight until the event loop turns.
  for (let i = 0; i < 20; i++) writer.write(line(i, 50));
  renameSync(file, `${file}.1`);
  execFileSync('mkfifo', [file]);
  const reader = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    assert.equal(writer.reopen(), true);
    for (let i = 20; i < 40; i++) writer.write(line(i, 50));
    await writer.close();
    const buffer = Buffer.alloc(64 * 1024);
    const fifo = parsed(buffer.toString('utf8', 0, readSync(reader, buffer))).map((l) => l.i);
    const old = parsed(readFileSync(`${file}.1`, 'utf8')).map((l) => l.i);
    assert.deepEqual([...old, ...fifo], Array.from({ length: 40 }, (_, i) => i));
  } finally {
    closeSync(reader);
  }
});
