/**
 * Flags for the node process that runs the gateway. V8 reads them when the
 * process starts, so they are on the command line of every launcher:
 * `npm start` (package.json), the systemd unit, and the bench, which
 * measures the gateway as it is deployed; test/systemd-unit.test.ts checks
 * that they agree.
 *
 * --max-semi-space-size=4: the young generation is capped at 4 MB per
 * semi-space instead of 16. Compiling a large manifest makes objects that
 * survive (the new table), and each young collection copies them: with 16 MB
 * a reload of 100,000 rules paused the event loop for 20–45 ms per
 * collection, with 4 MB for 5–13 ms, and the longest stall of the bench's
 * reload-100k halved (77 → 31 ms, medians). Redirect CPU and proxy
 * throughput did not change measurably (bench/results.md).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
