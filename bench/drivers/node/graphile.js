// Graphile Worker driver. The parent process enqueues (WorkerUtils.addJobs / addJob) and measures; worker
// processes (`processes` of them, Node being single-threaded) each run Graphile Worker's runner with
// `concurrency / processes` concurrent jobs.
//
// Configuration, from Graphile Worker's website/docs/performance.md: localQueue.size 500, completeJobBatchDelay
// and failJobBatchDelay 0 (the published 184k jobs/s configuration; the "Batching" section says a much higher
// local queue than concurrentJobs + 1 makes sense for very high throughput of fast tasks), and
// maxPoolSize = max(10, concurrentJobs + 2) as the maxPoolSize option's doc comment recommends. Concurrency is the
// benchmark's shared value, split over the processes.
'use strict';

const { fork } = require('child_process');
const { run, makeWorkerUtils, runMigrations, Logger } = require('graphile-worker');
const { nowUs, sleep, main, pacedSend, producerCount } = require('./common');

// Only errors reach stderr; stdout carries the result line alone.
const logger = new Logger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`graphile: ${message}\n`);
});

function conn(spec) {
  return spec.conn_url;
}

function workerConfig(spec) {
  const concurrentJobs = Math.max(1, Math.round(spec.concurrency / spec.processes));
  return {
    concurrentJobs,
    maxPoolSize: Math.max(10, concurrentJobs + 2),
    localQueue: { size: Math.max(spec.graphile_local_queue || 500, concurrentJobs + 1) },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  };
}

// ---------------------------------------------------------------------------------------------- child process
async function child(spec) {
  const cfg = workerConfig(spec);
  let started = 0;
  let firstUs = 0;
  let bCount = 0;
  let bLastUs = 0;
  let aCount = 0;
  let aAtBLast = 0;
  const aTimes = []; // fairness: when each of A's jobs started, to count those before B's last (across processes)
  let recordAfter = Number.MAX_SAFE_INTEGER;
  const lat = [];
  let runner = null;
  const taskList = {
    noop: async (payload) => {
      const now = nowUs();
      if (started === 0) firstUs = now;
      started += 1;
      if (payload.t >= recordAfter) lat.push((now - payload.t) / 1000);
      if (payload.g === 'B') {
        bCount += 1;
        bLastUs = now;
        aAtBLast = aCount;
      } else if (payload.g === 'A') {
        aCount += 1;
        aTimes.push(now);
      }
    },
  };
  const progress = setInterval(() => process.send({ type: 'progress', started, firstUs, bCount, bLastUs, aAtBLast }), 20);
  process.on('message', async (msg) => {
    if (msg.type === 'go') {
      recordAfter = msg.recordAfter || Number.MAX_SAFE_INTEGER;
      runner = await run({
        connectionString: conn(spec),
        concurrency: cfg.concurrentJobs,
        noHandleSignals: true,
        logger,
        taskList,
        preset: {
          worker: {
            maxPoolSize: cfg.maxPoolSize,
            localQueue: cfg.localQueue,
            completeJobBatchDelay: cfg.completeJobBatchDelay,
            failJobBatchDelay: cfg.failJobBatchDelay,
          },
        },
      });
      process.send({ type: 'running' });
    } else if (msg.type === 'record') {
      recordAfter = msg.recordAfter;
    } else if (msg.type === 'stop') {
      if (runner) await runner.stop();
      clearInterval(progress);
      if (msg.aBeforeUs) aAtBLast = aTimes.filter((t) => t <= msg.aBeforeUs).length;
      process.send({ type: 'stopped', started, firstUs, bCount, bLastUs, aAtBLast, lat }, () => process.exit(0));
    }
  });
  process.send({ type: 'ready' });
}

// --------------------------------------------------------------------------------------------- parent process
/** Starts the worker processes and returns a handle that sums their progress. */
async function startWorkers(spec, recordAfter) {
  const kids = [];
  for (let i = 0; i < spec.processes; i += 1) {
    const k = fork(__filename, [JSON.stringify(spec), 'child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const st = { proc: k, started: 0, bCount: 0, bLastUs: 0, aAtBLast: 0, lat: [], stopped: false, error: null };
    k.on('message', (m) => {
      if (m.type === 'progress' || m.type === 'stopped') Object.assign(st, m);
      if (m.type === 'stopped') st.stopped = true;
      if (m.type === 'ready') st.ready = true;
      if (m.type === 'running') st.running = true;
    });
    k.on('exit', (code) => { if (code && !st.stopped) st.error = `worker process exited with ${code}`; });
    kids.push(st);
  }
  const deadline = Date.now() + 30000;
  while (!kids.every((k) => k.ready)) {
    if (kids.some((k) => k.error) || Date.now() > deadline) throw new Error('worker processes did not start');
    await sleep(5);
  }
  const t0 = nowUs();
  kids.forEach((k) => k.proc.send({ type: 'go', recordAfter }));
  const h = {
    t0,
    kids,
    started: () => kids.reduce((s, k) => s + k.started, 0),
    check: () => { const e = kids.find((k) => k.error); if (e) throw new Error(e.error); },
    record: (t) => kids.forEach((k) => k.proc.send({ type: 'record', recordAfter: t })),
    async stop(aBeforeUs) {
      kids.forEach((k) => k.proc.send({ type: 'stop', aBeforeUs }));
      const until = Date.now() + 60000;
      while (!kids.every((k) => k.stopped)) {
        h.check();
        if (Date.now() > until) throw new Error('worker processes did not stop');
        await sleep(2);
      }
      return nowUs();
    },
  };
  return h;
}

async function waitFor(spec, h, cond) {
  const deadline = Date.now() + spec.timeout_s * 1000;
  while (!cond()) {
    h.check();
    if (Date.now() > deadline) throw new Error(`timed out after ${spec.timeout_s} s (${h.started()} started)`);
    await sleep(1);
  }
}

async function withUtils(spec, fn) {
  const utils = await makeWorkerUtils({ connectionString: conn(spec), logger,
    maxPoolSize: Math.max(10, producerCount(spec.rate) + 2) });
  try {
    return await fn(utils);
  } finally {
    await utils.release();
  }
}

async function addBatches(utils, n, batch, group) {
  let done = 0;
  while (done < n) {
    const k = Math.min(batch, n - done);
    const t = nowUs();
    const payload = group ? { t, g: group } : { t };
    await utils.addJobs(Array.from({ length: k }, () => ({ identifier: 'noop', payload })));
    done += k;
  }
  return done;
}

async function queuedCount(utils) {
  return utils.withPgClient(async (c) => Number((await c.query('select count(*) from graphile_worker.jobs')).rows[0].count));
}

const scenarios = {
  async setup(spec) {
    await runMigrations({ connectionString: conn(spec), logger });
    return { version: require('graphile-worker/package.json').version, config: workerConfig(spec) };
  },

  async enqueue(spec) {
    return withUtils(spec, async (utils) => {
      const t0 = nowUs();
      const n = await addBatches(utils, spec.n, spec.enqueue_batch);
      const s = (nowUs() - t0) / 1e6;
      return { n, seconds: s, tasks_per_s: n / s, t_start: t0 / 1e6, t_end: t0 / 1e6 + s };
    });
  },

  async work(spec) {
    const h = await startWorkers(spec);
    await waitFor(spec, h, () => h.started() >= spec.n);
    const tEnd = await h.stop();
    const s = (tEnd - h.t0) / 1e6;
    const left = await withUtils(spec, queuedCount);
    if (left !== 0) throw new Error(`${left} jobs left in graphile_worker.jobs after the drain`);
    return { n: spec.n, seconds: s, tasks_per_s: spec.n / s, t_start: h.t0 / 1e6, t_end: tEnd / 1e6 };
  },

  async steady(spec) {
    const h = await startWorkers(spec);
    return withUtils(spec, async (utils) => {
      let enqueued = 0;
      let stop = false;
      const producer = (async () => {
        while (!stop) {
          if (enqueued - h.started() >= spec.backlog_cap) { await sleep(1); continue; }
          enqueued += await addBatches(utils, spec.batch, spec.batch);
        }
      })();
      await sleep(spec.warmup_s * 1000);
      const [c0, e0, t0] = [h.started(), enqueued, nowUs()];
      await sleep(spec.duration_s * 1000);
      const [c1, e1, t1] = [h.started(), enqueued, nowUs()];
      stop = true;
      await producer;
      await h.stop();
      const s = (t1 - t0) / 1e6;
      return { seconds: s, completed: c1 - c0, tasks_per_s: (c1 - c0) / s, enqueued_per_s: (e1 - e0) / s,
        t_start: t0 / 1e6, t_end: t1 / 1e6 };
    });
  },

  async latency(spec) {
    const h = await startWorkers(spec);
    await waitFor(spec, h, () => h.kids.every((k) => k.running));
    return withUtils(spec, async (utils) => {
      await sleep(300);
      h.record(nowUs() + 50000 + spec.warmup_s * 1e6);
      const r = await pacedSend(spec, (t) => utils.addJob('noop', { t }));
      const tailEnd = Date.now() + spec.tail_s * 1000;
      while (h.started() < r.sent && Date.now() < tailEnd) { h.check(); await sleep(5); }
      await h.stop();
      const lat = [].concat(...h.kids.map((k) => k.lat));
      return { sent: r.sent, started: h.started(), offered_per_s: r.sent / r.seconds, producer_max_lag_ms: r.maxLagMs,
        latencies_ms: lat };
    });
  },

  async backlog() {
    return { available: false, reason: 'Graphile Worker has no public claim call to time (jobs are fetched inside its worker pool)' };
  },

  // A's backlog, then B's tasks, then the workers start: the clock runs from the first task's start.
  async fairness(spec) {
    await withUtils(spec, async (utils) => {
      await addBatches(utils, spec.fair_a, spec.enqueue_batch, 'A');
      await addBatches(utils, spec.fair_b, spec.enqueue_batch, 'B');
    });
    const h = await startWorkers(spec);
    await waitFor(spec, h, () => h.kids.reduce((s, k) => s + k.bCount, 0) >= spec.fair_b);
    const bDone = Math.max(...h.kids.map((k) => k.bLastUs));
    const first = Math.min(...h.kids.filter((k) => k.firstUs > 0).map((k) => k.firstUs));
    await h.stop(bDone);
    const aBefore = h.kids.reduce((s, k) => s + k.aAtBLast, 0);
    return { available: true, keyed: false, seconds: (bDone - first) / 1e6, a_started_before_b_done: aBefore };
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
