"""A fork made in C, as uWSGI makes its workers, reproduced without uWSGI.

``libc.fork()`` through ctypes skips Python's after-fork cleanup just as
uWSGI does: the child keeps the thread state of a parent thread that does not
exist in it, whose frames point into a stack the child's new threads reuse.
Each case runs in a subprocess and asserts its exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a C fork and /proc/self/task")

PARENT = """
import ctypes, os, threading, time
from otel_slowstack.lifecycle import afterfork
from otel_slowstack.capture import frames

def deep(n, until):
    if n:
        return deep(n - 1, until)
    until.wait()

# The master's export thread, say: deep in Python, blocked in C on a lock
# (never on the GIL or a timer, so the fork cannot catch it holding one of
# the runtime's own locks: that hazard is uWSGI's, not under test here).
threading.Thread(target=deep, args=(40, threading.Event()), daemon=True).start()
time.sleep(0.2)
pid = ctypes.PyDLL(None).fork()  # the GIL held across it, so the child has it
if pid == 0:
    code = 1
    try:
        code = child()
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


def _run(child: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(child) + PARENT
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        try:  # the forked child too, whatever happened to its parent
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_frames_are_not_read_after_a_c_fork_once_threads_run():
    """The worker already runs threads: no frame is read (no crash), one warning."""
    done = _run(
        """
        def child():
            stop = threading.Event()
            threads = [threading.Thread(target=deep, args=(40, stop)) for _ in range(8)]
            for t in threads: t.start()
            seen = [frames.current_frames() for _ in range(300)]
            refused = not afterfork.clean_up_after_c_fork()  # it would delete live threads' states
            stop.set()
            for t in threads: t.join()
            return 0 if refused and not any(seen) else 3
        """
    )
    assert done.stdout.strip() == "child exit 0", done.stdout + done.stderr
    assert done.stderr.count("forked without Python's after-fork cleanup") == 1, done.stderr


def test_cleanup_in_a_single_threaded_child_makes_frames_readable():
    """What the uWSGI post-fork hook does: afterwards, exactly the live threads are seen."""
    done = _run(
        """
        def child():
            import _imp
            if not afterfork.clean_up_after_c_fork() or _imp.lock_held():
                return 2
            stop = threading.Event()
            threads = [threading.Thread(target=deep, args=(40, stop)) for _ in range(8)]
            for t in threads: t.start()
            for _ in range(300):
                seen = frames.current_frames()
                if set(seen) != {threading.get_ident()} | {t.ident for t in threads}:
                    return 3
            stop.set()
            for t in threads: t.join()
            return 0
        """
    )
    assert done.stdout.strip() == "child exit 0", done.stdout + done.stderr
    assert "after-fork cleanup" not in done.stderr, done.stderr
