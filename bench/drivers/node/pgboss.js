// pg-boss driver: batch insert (`boss.insert`), and `workers` loops of `boss.fetch(queue, {batchSize})` +
// `boss.complete(queue, ids)`, all in one Node process.
//
// Configuration, from pg-boss's docs (README and types of the installed version): a queue created with
// `createQueue` (required since v10) and the default "standard" policy; batch fetch and batch complete are the
// documented way to move many jobs per round trip. pg-boss's own `work()` loop waits `pollingIntervalSeconds`
// (at least 0.5 s) between fetches unless it is notified from the same process, which would cap throughput at
// batchSize / 0.5 s per loop; a fetch/complete loop that polls again at once (and sleeps `idle_poll_ms` only
// when the queue is empty, the same interval as the baseline) is the fastest documented way to consume.
// Maintenance (supervise, archiving) stays at its defaults, as a deployment would run it.
'use strict';

const PgBoss = require('pg-boss');
const { nowUs, sleep, main, pacedSend, producerCount } = require('./common');

async function withBoss(spec, fn) {
  const boss = new PgBoss({ connectionString: spec.conn_url, max: spec.workers + producerCount(spec.rate) + 2, application_name: 'bench-pgboss' });
  boss.on('error', (e) => process.stderr.write(`pg-boss: ${e.stack || e}\n`));
  await boss.start();
  try {
    return await fn(boss);
  } finally {
    await boss.stop({ graceful: true, wait: true, timeout: 30000 });
  }
}

async function insertBatches(boss, spec, n, batch, group) {
  let done = 0;
  while (done < n) {
    const k = Math.min(batch, n - done);
    const t = nowUs();
    const data = group ? { t, g: group } : { t };
    await boss.insert(Array.from({ length: k }, () => ({ name: spec.queue, data })));
    done += k;
  }
  return done;
}

/** Runs `workers` fetch/complete loops until `until()` or `state.stop`; records starts into `state`. */
function startLoops(boss, spec, state, until) {
  const deadline = Date.now() + spec.timeout_s * 1000;
  return Promise.all(Array.from({ length: spec.workers }, async () => {
    for (;;) {
      const jobs = await boss.fetch(spec.queue, { batchSize: spec.batch });
      if (!jobs || jobs.length === 0) {
        if (state.stop || until()) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${spec.timeout_s} s (${state.started} started)`);
        await sleep(spec.idle_poll_ms);
        continue;
      }
      const now = nowUs();
      if (!state.firstUs) state.firstUs = now;
      for (const j of jobs) {
        if (j.data.t >= state.recordAfter) state.lat.push((now - j.data.t) / 1000);
        if (j.data.g === 'B') {
          state.bCount += 1;
          if (state.bCount === spec.fair_b) { state.bDoneUs = now; state.aBefore = state.aCount; }
        } else if (j.data.g === 'A') state.aCount += 1;
      }
      state.started += jobs.length;
      await boss.complete(spec.queue, jobs.map((j) => j.id));
      state.completed += jobs.length;
      if (state.stop) return;
    }
  }));
}

function newState() {
  return { started: 0, completed: 0, lat: [], recordAfter: Number.MAX_SAFE_INTEGER, bCount: 0, aCount: 0,
    bDoneUs: 0, aBefore: 0, firstUs: 0, stop: false };
}

const scenarios = {
  async setup(spec) {
    return withBoss(spec, async (boss) => {
      await boss.createQueue(spec.queue);
      return { version: require('pg-boss/package.json').version };
    });
  },

  async enqueue(spec) {
    return withBoss(spec, async (boss) => {
      const t0 = nowUs();
      const n = await insertBatches(boss, spec, spec.n, spec.enqueue_batch);
      const s = (nowUs() - t0) / 1e6;
      return { n, seconds: s, tasks_per_s: n / s, t_start: t0 / 1e6, t_end: t0 / 1e6 + s };
    });
  },

  async work(spec) {
    return withBoss(spec, async (boss) => {
      const st = newState();
      const t0 = nowUs();
      await startLoops(boss, spec, st, () => st.started >= spec.n);
      const t1 = nowUs();
      if (st.completed !== spec.n) throw new Error(`${st.completed} of ${spec.n} jobs completed`);
      const s = (t1 - t0) / 1e6;
      return { n: spec.n, seconds: s, tasks_per_s: spec.n / s, t_start: t0 / 1e6, t_end: t1 / 1e6 };
    });
  },

  async steady(spec) {
    return withBoss(spec, async (boss) => {
      const st = newState();
      const loops = startLoops(boss, spec, st, () => false);
      let enqueued = 0;
      const producer = (async () => {
        while (!st.stop) {
          if (enqueued - st.started >= spec.backlog_cap) { await sleep(1); continue; }
          enqueued += await insertBatches(boss, spec, spec.batch, spec.batch);
        }
      })();
      await sleep(spec.warmup_s * 1000);
      const [c0, e0, t0] = [st.completed, enqueued, nowUs()];
      await sleep(spec.duration_s * 1000);
      const [c1, e1, t1] = [st.completed, enqueued, nowUs()];
      st.stop = true;
      await producer;
      await loops;
      const s = (t1 - t0) / 1e6;
      return { seconds: s, completed: c1 - c0, tasks_per_s: (c1 - c0) / s, enqueued_per_s: (e1 - e0) / s,
        t_start: t0 / 1e6, t_end: t1 / 1e6 };
    });
  },

  async latency(spec) {
    return withBoss(spec, async (boss) => {
      const st = newState();
      const loops = startLoops(boss, spec, st, () => false);
      await sleep(300);
      st.recordAfter = nowUs() + 50000 + spec.warmup_s * 1e6;
      const r = await pacedSend(spec, (t) => boss.send(spec.queue, { t }));
      const tailEnd = Date.now() + spec.tail_s * 1000;
      while (st.started < r.sent && Date.now() < tailEnd) await sleep(5);
      st.stop = true;
      await loops;
      return { sent: r.sent, started: st.started, offered_per_s: r.sent / r.seconds, producer_max_lag_ms: r.maxLagMs,
        latencies_ms: st.lat };
    });
  },

  async backlog(spec) {
    return withBoss(spec, async (boss) => {
      const tf = nowUs();
      await insertBatches(boss, spec, spec.n, Math.max(spec.enqueue_batch, 1000));
      const fill = (nowUs() - tf) / 1e6;
      await boss.getDb().executeSql('ANALYZE', []);
      const lat = [];
      for (let i = 0; i < spec.samples; i += 1) {
        const t0 = nowUs();
        const jobs = await boss.fetch(spec.queue, { batchSize: 1 });
        const ms = (nowUs() - t0) / 1000;
        if (!jobs || jobs.length === 0) throw new Error(`fetch returned nothing with ${spec.n} queued`);
        lat.push(ms);
        await boss.complete(spec.queue, jobs.map((j) => j.id));
      }
      return { n: spec.n, keys: 0, fill_s: fill, latencies_ms: lat };
    });
  },

  // A's backlog, then B's jobs, then the fetch loops start: the clock runs from the first job's start.
  async fairness(spec) {
    return withBoss(spec, async (boss) => {
      await insertBatches(boss, spec, spec.fair_a, spec.enqueue_batch, 'A');
      await insertBatches(boss, spec, spec.fair_b, spec.enqueue_batch, 'B');
      const st = newState();
      const loops = startLoops(boss, spec, st, () => false);
      const deadline = Date.now() + spec.timeout_s * 1000;
      while (st.bCount < spec.fair_b) {
        if (Date.now() > deadline) throw new Error('B not done before the timeout');
        await sleep(1);
      }
      st.stop = true;
      await loops;
      return { available: true, keyed: false, seconds: (st.bDoneUs - st.firstUs) / 1e6, a_started_before_b_done: st.aBefore };
    });
  },
};

main(async (spec) => {
  const f = scenarios[spec.scenario];
  if (!f) throw new Error(`unknown scenario ${spec.scenario}`);
  return f(spec);
});
