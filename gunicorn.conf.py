"""gunicorn settings for tierdesk's web process (read from the working directory by default)."""

import sys


def post_worker_init(worker: object) -> None:
    # A webhook's work is short CPU bursts around SQLite calls that release the GIL. With the default
    # 5 ms switch interval, a thread coming back from SQLite waits for a busy sibling thread to yield:
    # that wait, not the work, was most of the ack latency under load.
    sys.setswitchinterval(0.0005)
