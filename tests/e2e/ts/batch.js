// TypeScript SDK batch tasks against hatchet-server (START_BATCH and SendBatchActionEvent): a batch flushed when
// full, batches grouped by a CEL key and flushed by the interval, and a broadcast output; the process prints the
// outputs as one JSON line. Run by tests/e2e/test_typescript.py with the server's HATCHET_CLIENT_* environment.
const { HatchetClient } = require('@hatchet-dev/typescript-sdk/v1');

// Each handler call names its batch, so the test can tell which members ran together.
let calls = 0;

function perMember(tasks, fn) {
  calls += 1;
  const batch = `b${calls}`;
  const size = Object.keys(tasks).length;
  const out = {};
  for (const [id, input] of Object.entries(tasks)) {
    out[id] = { batch, size, ...fn(input) };
  }
  return out;
}

async function main() {
  const hatchet = HatchetClient.init();

  // Flushes only when full: the interval is longer than the test waits.
  const bySize = hatchet.batchTask({
    name: 'e2e-ts-batch-size',
    batch: { maxSize: 3, maxInterval: 60000 },
    fn: async (tasks) => perMember(tasks, (input) => ({ upper: input.message.toUpperCase() })),
  });
  // Batches of one key each; two of four never fill, so the 1 s interval flushes them.
  const keyed = hatchet.batchTask({
    name: 'e2e-ts-batch-keyed',
    batch: { maxSize: 4, maxInterval: 1000, groupKey: 'input.group' },
    fn: async (tasks) => perMember(tasks, (input) => ({ group: input.group, upper: input.message.toUpperCase() })),
  });
  const broadcast = hatchet.batchTask({
    name: 'e2e-ts-batch-broadcast',
    batch: { maxSize: 3, maxInterval: 60000, broadcastOutput: true },
    fn: async (tasks) => ({
      size: Object.keys(tasks).length,
      total: Object.values(tasks).reduce((n, input) => n + input.message.length, 0),
    }),
  });

  const worker = await hatchet.worker('e2e-ts-batch-worker', {
    workflows: [bySize, keyed, broadcast],
    slots: 5,
  });
  const running = worker.start();
  await new Promise((resolve) => setTimeout(resolve, 2000));

  const started = Date.now();
  const size = await bySize.run([{ message: 'alpha' }, { message: 'bravo' }, { message: 'charlie' }]);
  const sizeSeconds = (Date.now() - started) / 1000;
  const keyedOut = await keyed.run([
    { message: 'one', group: 'g1' },
    { message: 'two', group: 'g2' },
    { message: 'three', group: 'g1' },
    { message: 'four', group: 'g2' },
  ]);
  const broadcastOut = await broadcast.run([{ message: 'a' }, { message: 'bb' }, { message: 'ccc' }]);
  console.log(JSON.stringify({ size, sizeSeconds, keyed: keyedOut, broadcast: broadcastOut }));

  await worker.stop();
  await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
