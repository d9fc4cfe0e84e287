// TypeScript SDK smoke test against hatchet-server: one process declares a task, a DAG and a parent spawning a
// child, starts a worker, runs them and prints the results as one JSON line. Run by tests/e2e/test_typescript.py with the server's
// HATCHET_CLIENT_* environment.
const { HatchetClient } = require('@hatchet-dev/typescript-sdk/v1');

async function main() {
  const hatchet = HatchetClient.init();

  const lower = hatchet.task({
    name: 'e2e-ts-lower',
    fn: async (input) => ({ lower: input.message.toLowerCase() }),
  });

  const dag = hatchet.workflow({ name: 'E2ETsDag' });
  const first = dag.task({ name: 'first', fn: (input) => ({ n: input.n }) });
  const left = dag.task({
    name: 'left',
    parents: [first],
    fn: async (input, ctx) => ({ v: (await ctx.parentOutput(first)).n * 2 }),
  });
  const right = dag.task({
    name: 'right',
    parents: [first],
    fn: async (input, ctx) => ({ v: (await ctx.parentOutput(first)).n + 100 }),
  });
  dag.task({
    name: 'sum',
    parents: [left, right],
    fn: async (input, ctx) => ({
      sum: (await ctx.parentOutput(left)).v + (await ctx.parentOutput(right)).v,
    }),
  });

  // A child run learns its parent run (AssignedAction.parent_workflow_run_id); a run without a parent has none.
  const child = hatchet.task({
    name: 'e2e-ts-child',
    fn: async (input, ctx) => ({ parent: ctx.parentWorkflowRunId() ?? null }),
  });
  const parent = hatchet.task({
    name: 'e2e-ts-parent',
    fn: async (input, ctx) => ({ me: ctx.workflowRunId(), child: await ctx.runChild(child, {}) }),
  });

  const worker = await hatchet.worker('e2e-ts-worker', { workflows: [lower, dag, child, parent], slots: 10 });
  const running = worker.start();
  await new Promise((resolve) => setTimeout(resolve, 2000));

  const task = await lower.run({ message: 'HeLLo From TypeScript' });
  const many = await lower.run([{ message: 'A' }, { message: 'B' }]);
  const dagResult = await dag.run({ n: 5 });
  const family = await parent.run({});
  const orphan = await child.run({});
  console.log(JSON.stringify({ task, many, dag: dagResult, family, orphan }));

  await worker.stop();
  await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
