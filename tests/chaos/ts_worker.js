// One chaos worker process on the TypeScript SDK (the version pinned in tests/e2e/ts/package.json):
// `node ts_worker.js NAME SLOTS`. It serves the task chaos-ts (triggered by load.py through a stub), whose body
// writes the same ledger as the Python tasks (flows.py): a start and an end record per execution in
// CHAOS_LEDGER_DIR/<NAME>.<pid>.jsonl, appended and fsync'd one record at a time. The environment names the tenant
// (CHAOS_TENANT) and the replica (HATCHET_CLIENT_HOST_PORT), as for worker.py.
const fs = require('fs');
const path = require('path');
const { HatchetClient } = require('@hatchet-dev/typescript-sdk/v1');

const name = process.argv[2];
const slots = Number(process.argv[3] || '8');
const tenant = process.env.CHAOS_TENANT || '?';
const ledgerDir = process.env.CHAOS_LEDGER_DIR || '';
const timeoutS = Number(process.env.CHAOS_EXECUTION_TIMEOUT_S || '30');

let fd = null;
function ledger(record) {
  if (!ledgerDir) return;
  if (fd === null) {
    fd = fs.openSync(path.join(ledgerDir, `${name}.${process.pid}.jsonl`), 'a', 0o644);
  }
  fs.writeSync(fd, `${JSON.stringify(record)}\n`);
  fs.fsyncSync(fd);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const hatchet = HatchetClient.init();
  const task = hatchet.task({
    name: 'chaos-ts',
    retries: 2,
    executionTimeout: `${timeoutS}s`,
    fn: async (input, ctx) => {
      const base = {
        tenant,
        task: 'chaos-ts',
        key: input.key,
        run_id: ctx.workflowRunId(),
        task_id: ctx.taskRunExternalId(),
        retry: ctx.retryCount(),
        worker: name,
        pid: process.pid,
      };
      ledger({ ...base, ph: 'start', t: Date.now() / 1000 });
      let ok = false;
      try {
        await sleep(input.ms || 100);
        if (ctx.retryCount() < (input.fail || 0)) {
          throw new Error(`${input.key}: attempt ${ctx.retryCount()} fails on purpose`);
        }
        ok = true;
      } finally {
        ledger({ ...base, ph: 'end', t: Date.now() / 1000, ok });
      }
      return { key: input.key, retry: ctx.retryCount(), worker: name };
    },
  });
  const worker = await hatchet.worker(name, { workflows: [task], slots });
  const stop = async () => {
    await worker.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await worker.start();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
