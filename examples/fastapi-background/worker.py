"""The worker that sends the emails: `python worker.py`."""

from emails import hatchet, send_welcome


def main() -> None:
    hatchet.worker("fastapi-example-worker", slots=4, workflows=[send_welcome]).start()


if __name__ == "__main__":
    main()
