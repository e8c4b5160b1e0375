"""An owner released by its request while the watchdog captures it: no error, no stack.

The request's thread runs ``release()`` when its span ends; the watchdog may
be inside ``capture()`` at that very moment. Each owner reads its state once,
so the capture answers None (the span has ended) instead of failing on a
field that turned None under it (seen: ``AttributeError: 'NoneType' object has
no attribute 'get'`` in 2 of 20,000 samples).
"""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from otel_slowstack.capture import entry, greenlet_owner, owners, task_owner, thread_owner

pytestmark = pytest.mark.unit


def _released_midway(monkeypatch, module, name: str, owner_box: list) -> None:
    """Make ``module.<name>`` release the owner before doing its work: the race, made certain."""
    original = getattr(module, name)

    def racing(*args, **kwargs):
        owner_box[0].release()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, racing)


def test_a_task_owner_released_during_capture_answers_none(monkeypatch):
    box: list = [None]
    captured: list = []

    async def request() -> None:
        box[0] = owners.task_or_greenlet_owner(sys._getframe(0), None)
        assert isinstance(box[0], owners.TaskOwner)
        ready = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, ready.set)
        _released_midway(monkeypatch, task_owner, "await_chain", box)
        captured.append(box[0].capture(sys._current_frames(), None))  # not suspended: loop frames
        await ready.wait()

    async def watchdog_side() -> None:
        task = asyncio.ensure_future(request())
        await asyncio.sleep(0.01)  # the request task is suspended in ready.wait()
        owner = box[0]
        owner.task, owner.starter = task, task.get_coro().cr_frame
        owner._candidates = None
        captured.append(owner.capture(sys._current_frames(), None))
        await task

    asyncio.run(watchdog_side())
    assert captured[-1] is None


@pytest.mark.parametrize("kind", ["thread", "greenlet"])
def test_thread_and_greenlet_owners_released_during_capture_never_fail(monkeypatch, kind):
    greenlet = pytest.importorskip("greenlet") if kind == "greenlet" else None  # here: a skip in a thread is lost
    box: list = [None]
    stop = threading.Event()
    started = threading.Event()

    def request() -> None:
        frame = sys._getframe(0)
        if kind == "thread":
            box[0] = owners.ThreadOwner(threading.get_ident(), frame)
        else:
            box[0] = owners.GreenletOwner(greenlet.getcurrent(), threading.get_ident(), frame)
        started.set()
        stop.wait(5)

    thread = threading.Thread(target=request)
    thread.start()
    try:
        assert started.wait(5)
        module = thread_owner if kind == "thread" else greenlet_owner
        for where, name in ((module, "frames_from_entry"), (module, "lines_of"), (entry, "entry_candidates")):
            with monkeypatch.context() as patch:
                _released_midway(patch, where, name, box)
                box[0].starter = sys._current_frames()[thread.ident]
                box[0]._candidates = None
                # Read before the release: the stack as it was, or None; never an error.
                lines = box[0].capture(sys._current_frames(), None)
                assert lines is None or lines[-1].name == "wait"
        box[0].release()
        assert box[0].capture(sys._current_frames(), None) is None
    finally:
        stop.set()
        thread.join()
