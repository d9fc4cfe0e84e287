"""Unstorable output (issue 15): a task whose result holds a NUL character (`\\u0000`, valid JSON that Postgres's
jsonb cannot store) ends FAILED with the reason, on its first attempt. Before, the server answered the SDK's
COMPLETED with INTERNAL, the SDK sent it again and again, and the run only failed when the attempt timed out (with a
timeout as the reason)."""

from __future__ import annotations

import pytest
from hatchet_sdk import FailedTaskRunExceptionGroup

pytestmark = pytest.mark.usefixtures("main_worker")


def test_a_nul_in_the_output_fails_the_run_with_the_reason(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.nul_output.run()
    errors = info.value.exceptions
    assert len(errors) == 1
    message = str(errors[0])
    assert "InvalidOutput" in message, message
    assert "\\u0000" in message, message
    assert "timeout" not in message.lower(), message
