"""The background-thread skeleton shared by the watchdog and the snapshot flusher:
woken by an event, stopped with a join, rebuilt in a forked child."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from otel_slowstack.lifecycle.service_thread import ServiceThread, WakeUp, serve_each_wakeup

pytestmark = pytest.mark.unit


def alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def test_a_wake_up_set_before_the_wait_is_kept_once():
    wakeup = WakeUp()
    wakeup.set()
    wakeup.set()
    assert wakeup.wait(0) is True
    assert wakeup.wait(0.01) is False


def test_it_starts_on_the_first_wake_and_runs_the_work_each_time():
    ran = []
    done = threading.Event()

    def work() -> None:
        ran.append(1)
        done.set()

    thread = serve_each_wakeup("test-service-wakes", work)
    assert not thread.running and not alive("test-service-wakes")  # nothing at construction
    for expected in (1, 2):
        done.clear()
        thread.wake()
        assert done.wait(5)
        assert len(ran) == expected
    assert thread.stop(5)


def test_stop_wakes_it_and_joins_without_waiting_for_a_timeout():
    thread = serve_each_wakeup("test-service-stops", lambda: None)
    thread.wake()
    deadline = time.monotonic() + 5
    while thread.ident is None and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    assert thread.stop(5) is True
    assert time.monotonic() - began < 1.0  # woken by the event, not by a poll
    assert not thread.running and thread.ident is None
    assert not alive("test-service-stops")
    thread.wake()  # stopped for good (until a fork): no new thread
    assert not thread.running


def test_a_body_that_ends_when_idle_is_restarted_by_the_next_wake():
    work: list = []
    passes: list = []

    def body() -> None:
        while True:
            if thread.end_if(lambda: not work):
                return
            passes.append(work.pop())

    thread = ServiceThread("test-service-idle", body)
    work.append("a")
    thread.wake()
    assert thread.join(5)
    assert passes == ["a"] and not thread.running
    work.append("b")
    thread.wake()
    assert thread.join(5)
    assert passes == ["a", "b"]


def test_a_body_that_raises_is_reported_and_the_thread_ends(caplog):
    def body() -> None:
        raise RuntimeError("boom")

    thread = ServiceThread("test-service-raises", body)
    thread.wake()
    assert thread.join(5)
    assert not thread.running
    assert any("test-service-raises" in r.getMessage() for r in caplog.records)


def test_rebuilt_in_a_forked_child():
    script = textwrap.dedent(
        """
        import os, sys, threading
        from otel_slowstack.lifecycle.service_thread import serve_each_wakeup

        ran = []
        done = threading.Event()
        forgotten = []
        thread = serve_each_wakeup("svc", lambda: (ran.append(os.getpid()), done.set()),
                                   after_fork=lambda: forgotten.append(True))
        thread.wake()
        assert done.wait(5)
        parent_ident = thread.ident
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # The parent's thread does not exist here: fresh state, nothing running.
                assert not thread.running and thread.ident is None and forgotten == [True]
                done.clear()
                thread.wake()
                assert done.wait(5) and ran[-1] == os.getpid()
                assert thread.stop(5)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert thread.ident == parent_ident and forgotten == []
        print("CHILD", os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "CHILD 0" in out.stdout, out.stdout + out.stderr
