"""A Python thread in the uWSGI master (``--shared-import``), as the SDK's export
thread is under ``opentelemetry-instrument``: every worker forked in C inherits
its thread state, pointing into a stack that no longer exists there."""

import threading
import time


def _nested(depth: int) -> None:
    if depth:
        _nested(depth - 1)
    else:
        while True:
            time.sleep(0.01)


threading.Thread(target=_nested, args=(20,), name="master-thread", daemon=True).start()
