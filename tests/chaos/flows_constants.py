"""Constants shared by the workflows (flows.py), the harness and the checker, which must not import the SDK."""

RR_MAX_RUNS = 2
RATE_LIMIT_KEY = "chaos-rl"
RATE_LIMIT_PER_SECOND = 4
DURABLE_EVENT_KEY = "chaos:durable-signal"
TS_TASK = "chaos-ts"
