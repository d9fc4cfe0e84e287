// Shared helpers for the Node drivers (Graphile Worker, pg-boss): the driver contract (one JSON spec in argv,
// one JSON result line on stdout), a wall clock in epoch microseconds, and paced sending for fixed offered load.
'use strict';

const { performance } = require('perf_hooks');

/** Microseconds since the Unix epoch, with sub-millisecond resolution (Date.now() has only ms). */
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sleeps until an epoch time in microseconds. setTimeout has ~1 ms granularity; the send is stamped when it
 * actually happens, so the jitter changes the schedule slightly, never the measured latency. (No busy-waiting:
 * on a 2-core machine a spinning producer would take CPU from the system under test.)
 */
async function sleepUntilUs(targetUs) {
  const left = targetUs - nowUs();
  if (left > 0) await sleep(left / 1000);
}

/** Reads the spec from argv[2] with the same defaults as the Rust driver. */
function readSpec() {
  const spec = JSON.parse(process.argv[2] || '{}');
  const d = {
    queue: 'bench', n: 1000, enqueue_batch: 1000, batch: 100, workers: 4, concurrency: 16, processes: 2,
    rate: 200, duration_s: 10, warmup_s: 1, backlog_cap: 5000, samples: 200, keys: 0, tail_s: 30,
    fair_a: 50000, fair_b: 50, idle_poll_ms: 2, timeout_s: 600,
  };
  return { ...d, ...spec };
}

/**
 * Prints the result line and exits; any exception becomes {"ok": false}. Exits only once stdout has flushed:
 * writes to a pipe are asynchronous in Node, and exiting at once would cut a long line (latency samples) at 64 KiB.
 */
async function main(run) {
  const spec = readSpec();
  let line;
  let code = 0;
  try {
    line = JSON.stringify({ ok: true, ...(await run(spec)) });
  } catch (err) {
    line = JSON.stringify({ ok: false, error: String((err && err.stack) || err) });
    code = 1;
  }
  process.stdout.write(line + '\n', () => process.exit(code));
}

/** Producer connections for a fixed offered load: one per 200 tasks/s, so a slow commit never holds up the rest. */
function producerCount(rate) {
  return Math.max(1, Math.ceil(rate / 200));
}

/**
 * Fixed offered load: `producers` loops send one task each on a shared schedule (task i is due at
 * t0 + i/rate), so one slow call does not delay the others. `send(tUs)` enqueues one task stamped tUs.
 * Returns {sent, seconds, maxLagMs}.
 */
async function pacedSend(spec, send) {
  const total = Math.round(spec.rate * spec.duration_s);
  const producers = producerCount(spec.rate);
  const t0 = nowUs() + 50000;
  let sent = 0;
  let maxLag = 0;
  await Promise.all(Array.from({ length: producers }, async (_, p) => {
    for (let i = p; i < total; i += producers) {
      const due = t0 + Math.floor((i * 1e6) / spec.rate);
      await sleepUntilUs(due);
      const t = nowUs();
      maxLag = Math.max(maxLag, t - due);
      await send(t);
      sent += 1;
    }
  }));
  return { sent, seconds: (nowUs() - t0) / 1e6, maxLagMs: maxLag / 1000, t0 };
}

module.exports = { nowUs, sleep, sleepUntilUs, readSpec, main, pacedSend, producerCount };
