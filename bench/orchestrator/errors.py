"""The one exception the scenarios raise on purpose."""


class StepError(Exception):
    """A driver step failed; the message is the driver's error. The run counts as failed, the benchmark goes on."""
