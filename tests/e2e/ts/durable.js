// TypeScript SDK durable task against hatchet-server (engine v0.80.0: the DurableTask stream): one durable task
// sleeps, waits for an event (CEL over its payload) and spawns a child, then the process prints the result as one
// JSON line. Run by tests/e2e/test_typescript.py with the server's HATCHET_CLIENT_* environment.
const { HatchetClient } = require('@hatchet-dev/typescript-sdk/v1');

const EVENT_KEY = 'e2e-ts-durable:go';

async function main() {
  const hatchet = HatchetClient.init();
  const token = `t${Date.now()}`;

  const child = hatchet.task({
    name: 'e2e-ts-durable-child',
    fn: async (input) => ({ doubled: input.n * 2 }),
  });

  const durable = hatchet.durableTask({
    name: 'e2e-ts-durable',
    executionTimeout: '60s',
    fn: async (input, ctx) => {
      const started = Date.now();
      await ctx.sleepFor('2s');
      const slept = (Date.now() - started) / 1000;
      const event = await ctx.waitForEvent(EVENT_KEY, `input.token == '${input.token}'`);
      const spawned = await ctx.spawnChild(child, { n: 21 });
      return { slept_at_least_2s: slept >= 2, event, child: spawned, invocation: ctx.invocationCount };
    },
  });

  const worker = await hatchet.worker('e2e-ts-durable-worker', {
    workflows: [child, durable],
    slots: 10,
    durableSlots: 10,
  });
  const running = worker.start();
  await new Promise((resolve) => setTimeout(resolve, 2000));

  // The event counts only once the task waits for it: push it every second until the run is done.
  let done = false;
  const pusher = (async () => {
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (!done) await hatchet.events.push(EVENT_KEY, { token, other: 'x' });
    }
  })();
  const result = await durable.run({ token });
  done = true;
  await pusher;
  console.log(JSON.stringify({ result, token }));

  await worker.stop();
  await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
