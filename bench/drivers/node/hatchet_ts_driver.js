// Through-the-server driver for a Node team: the official TypeScript SDK (@hatchet-dev/typescript-sdk, pinned in
// package.json / package-lock.json) against hatchet-server over pg_hatchet, beside Graphile Worker.
//
// The parent process is the producer (`runNoWait(inputs[])` batches for the drain: the SDK sends them as
// BulkTriggerWorkflow calls of at most 500; `runNoWait(input)` per task for latency) and measures. The worker is a
// separate Node process (forked detached, so it has its own process group: the orchestrator's CPU sampler counts it
// as a worker, apart from the producer) running `hatchet.worker(name, {slots: concurrency})` with one no-op task,
// `bench-ts-noop`, whose body stamps its start time the way graphile.js's task does (count, first start, and the
// enqueue-to-start latency of the recorded tasks), reported to the parent over IPC every 20 ms.
//
// The SDK reads its connection from the environment the orchestrator sets: HATCHET_CLIENT_TOKEN,
// HATCHET_CLIENT_HOST_PORT, HATCHET_CLIENT_TLS_STRATEGY=none, HATCHET_CLIENT_API_URL (no namespace), and
// HATCHET_CLIENT_LOG_LEVEL=WARN (the SDK logs every task at INFO; the other workers run at WARNING too).
//
// Scenarios: probe (one task end to end, to decide whether the server is usable), enqueue, work, latency.
'use strict';

const { fork } = require('child_process');
const { nowUs, sleep, main, pacedSend } = require('./common');

const TASK = 'bench-ts-noop';

function sdk() {
  // Loaded lazily: the module is large, and a missing install must become a result line, not a crash.
  const { HatchetClient } = require('@hatchet-dev/typescript-sdk/v1');
  const hatchet = HatchetClient.init();
  return hatchet;
}

function declare(hatchet, body) {
  return hatchet.task({ name: TASK, fn: async (input) => { body(input); return {}; } });
}

// ---------------------------------------------------------------------------------------------- worker process
async function child(spec) {
  const hatchet = sdk();
  let started = 0;
  let firstUs = 0;
  let recordAfter = Number.MAX_SAFE_INTEGER;
  const lat = [];
  const task = declare(hatchet, (input) => {
    const now = nowUs();
    if (started === 0) firstUs = now;
    started += 1;
    if (input.t >= recordAfter) lat.push((now - input.t) / 1000);
  });
  const slots = Math.max(1, Math.round(spec.concurrency / (spec.sdk_processes || 1)));
  const worker = await hatchet.worker(`bench-ts-worker`, { workflows: [task], slots, handleKill: false });
  const progress = setInterval(() => process.send({ type: 'progress', started, firstUs }), 20);
  process.on('message', async (msg) => {
    if (msg.type === 'record') {
      recordAfter = msg.recordAfter;
    } else if (msg.type === 'stop') {
      await worker.stop();
      clearInterval(progress);
      process.send({ type: 'stopped', started, firstUs, lat }, () => process.exit(0));
    }
  });
  // start() resolves only when the worker stops; registration and the listener are up once it is running.
  worker.start().catch((e) => {
    process.stderr.write(`hatchet ts worker: ${e.stack || e}\n`);
    process.exit(1);
  });
  await worker.waitUntilReady(60000);
  process.send({ type: 'running' });
}

// ---------------------------------------------------------------------------------------------- parent process
async function startWorkers(spec) {
  const kids = [];
  for (let i = 0; i < (spec.sdk_processes || 1); i += 1) {
    const k = fork(__filename, [JSON.stringify(spec), 'child'], {
      // The SDK logs (WARN and above) to stdout: to our stderr, which the orchestrator keeps in driver.log.
      stdio: ['ignore', 2, 'inherit', 'ipc'], detached: true,
    });
    const st = { proc: k, started: 0, firstUs: 0, lat: [], stopped: false, running: false, error: null };
    k.on('message', (m) => {
      if (m.type === 'progress' || m.type === 'stopped') Object.assign(st, m);
      if (m.type === 'stopped') st.stopped = true;
      if (m.type === 'running') st.running = true;
    });
    k.on('exit', (code, sig) => { if (!st.stopped) st.error = `TS SDK worker process exited (${code ?? sig})`; });
    kids.push(st);
  }
  const h = {
    kids,
    started: () => kids.reduce((s, k) => s + k.started, 0),
    firstUs: () => Math.min(...kids.filter((k) => k.firstUs > 0).map((k) => k.firstUs)),
    check: () => { const e = kids.find((k) => k.error); if (e) throw new Error(e.error); },
    record: (t) => kids.forEach((k) => k.proc.send({ type: 'record', recordAfter: t })),
    async stop() {
      kids.forEach((k) => { if (!k.stopped && k.proc.connected) k.proc.send({ type: 'stop' }); });
      const until = Date.now() + 30000;
      while (!kids.every((k) => k.stopped)) {
        if (Date.now() > until || kids.some((k) => k.error)) {
          kids.forEach((k) => { try { process.kill(-k.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ } });
          throw new Error('TS SDK worker processes did not stop within 30 s');
        }
        await sleep(2);
      }
      return nowUs();
    },
    kill() {
      kids.forEach((k) => { if (!k.stopped) { try { process.kill(-k.proc.pid, 'SIGKILL'); } catch (_) { /* gone */ } } });
    },
  };
  return h;
}

async function waitFor(h, timeoutS, cond, what) {
  const deadline = Date.now() + timeoutS * 1000;
  while (!cond()) {
    h.check();
    if (Date.now() > deadline) throw new Error(`${what} (after ${timeoutS} s, ${h.started()} started)`);
    await sleep(1);
  }
}

/** Runs `fn(h)` with started workers, always stopping (or killing) them. */
async function withWorkers(spec, fn) {
  const h = await startWorkers(spec);
  try {
    return await fn(h);
  } finally {
    h.kill();
  }
}

const scenarios = {
  async probe(spec) {
    const task = declare(sdk(), () => {});
    return withWorkers(spec, async (h) => {
      await waitFor(h, spec.probe_timeout_s || 60, () => h.kids.every((k) => k.running), 'the TS SDK worker did not start');
      const t0 = nowUs();
      await task.runNoWait({ t: t0 });
      await waitFor(h, spec.probe_timeout_s || 60, () => h.started() >= 1, 'no task ran through the server');
      await h.stop();
      return { seconds: (nowUs() - t0) / 1e6, version: require('@hatchet-dev/typescript-sdk/package.json').version };
    });
  },

  async enqueue(spec) {
    const task = declare(sdk(), () => {});
    const t0 = nowUs();
    let done = 0;
    while (done < spec.n) {
      const k = Math.min(spec.enqueue_batch, spec.n - done);
      const t = nowUs();
      const refs = await task.runNoWait(Array.from({ length: k }, () => ({ t })));
      if (refs.length !== k) throw new Error(`runNoWait of ${k} inputs returned ${refs.length} runs`);
      done += k;
    }
    const s = (nowUs() - t0) / 1e6;
    return { n: done, seconds: s, tasks_per_s: done / s, t_start: t0 / 1e6, t_end: t0 / 1e6 + s };
  },

  // Drain: from the first task's start until the n-th has started (worker start-up not counted, as for the
  // Python SDK and Celery drains).
  async work(spec) {
    return withWorkers(spec, async (h) => {
      await waitFor(h, spec.timeout_s, () => h.started() >= spec.n, `not all ${spec.n} tasks ran`);
      const t1 = nowUs();
      const t0 = h.firstUs();
      await h.stop();
      const s = (t1 - t0) / 1e6;
      return { n: spec.n, seconds: s, tasks_per_s: spec.n / s, t_start: t0 / 1e6, t_end: t1 / 1e6 };
    });
  },

  async latency(spec) {
    const task = declare(sdk(), () => {});
    return withWorkers(spec, async (h) => {
      await waitFor(h, 60, () => h.kids.every((k) => k.running), 'the TS SDK worker did not start');
      // One task through the whole path first, so the clock starts with a warm connection on both sides.
      await task.runNoWait({ t: nowUs() });
      await waitFor(h, 60, () => h.started() >= 1, 'the warm-up task did not run');
      const before = h.started();
      h.record(nowUs() + 50000 + spec.warmup_s * 1e6);
      const r = await pacedSend(spec, (t) => task.runNoWait({ t }));
      const tailEnd = Date.now() + spec.tail_s * 1000;
      while (h.started() - before < r.sent && Date.now() < tailEnd) { h.check(); await sleep(5); }
      const started = h.started() - before;
      await h.stop();
      const lat = [].concat(...h.kids.map((k) => k.lat));
      return { sent: r.sent, started, offered_per_s: r.sent / r.seconds, producer_max_lag_ms: r.maxLagMs,
        latencies_ms: lat };
    });
  },
};

if (process.argv[3] === 'child') {
  child(JSON.parse(process.argv[2])).catch((e) => { process.stderr.write(String(e.stack || e) + '\n'); process.exit(1); });
} else {
  main(async (spec) => {
    const f = scenarios[spec.scenario];
    if (!f) throw new Error(`unknown scenario ${spec.scenario}`);
    return f(spec);
  });
}
