"""Unstorable output (issue 15): a task whose result holds a NUL character (`\\u0000`, valid JSON that Postgres's
jsonb cannot store) ends FAILED with the reason on its first attempt, never after a timeout.

With the Python SDK the worker itself refuses such an output (`IllegalTaskOutputError`) and reports the failure, so
this test shows the run fails at once with that reason. The server's own handling of a NUL that reaches it from other
clients (SQLSTATE 22P05 mapped to INVALID_ARGUMENT and the attempt failed with "InvalidOutput" instead of answered
INTERNAL, hatchet-server/src/error.rs and grpc/dispatcher.rs) has no end-to-end test yet: the Python SDK never sends
one."""

from __future__ import annotations

import pytest
from hatchet_sdk import FailedTaskRunExceptionGroup

pytestmark = pytest.mark.usefixtures("main_worker")


def test_a_nul_in_the_output_fails_the_run_at_once_with_the_reason(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.nul_output.run()
    errors = info.value.exceptions
    assert len(errors) == 1
    message = str(errors[0])
    assert "\\u0000" in message, message
    assert "timeout" not in message.lower(), message
    assert "TIMED_OUT" not in message, message
