"""Every owner answers every question of the ``Owner`` protocol, so no caller
needs a ``getattr`` default (issue 14); a stuck thread sampled again reuses
its previous lines only while nothing can have moved (issue 12)."""

from __future__ import annotations

import asyncio
import sys
import threading
import typing

import pytest

from otel_slowstack.capture.owners import GreenletOwner, Owner, TaskOwner, ThreadOwner, task_or_greenlet_owner

pytestmark = pytest.mark.unit

MEMBERS = sorted(
    name for name in typing.get_type_hints(Owner) | vars(Owner)
    if not name.startswith("_") and name not in ("register",)
)


@pytest.mark.parametrize("kind", [ThreadOwner, TaskOwner, GreenletOwner])
def test_every_owner_class_has_every_member(kind):
    assert {"capture", "interrupt", "withdraw", "release", "thread_ident", "ident", "hub"} <= set(MEMBERS)
    for name in MEMBERS:
        assert hasattr(kind, name) or name in kind.__slots__, (kind.__name__, name)


def test_a_thread_owner_is_an_owner():
    owner = ThreadOwner(threading.get_ident(), sys._getframe(0))
    assert isinstance(owner, Owner)
    assert owner.loop_blocked_by is None and owner.hub() is None
    assert owner.working_thread(sys._current_frames()) == threading.get_ident()


def test_a_task_owner_is_an_owner():
    async def request():
        owner = task_or_greenlet_owner(sys._getframe(0), None)
        assert isinstance(owner, TaskOwner) and isinstance(owner, Owner)
        assert owner.scoped() and owner.hub() is None and owner.loop_blocked_by is None
        owner.release()

    asyncio.run(request())


def test_a_greenlet_owner_is_an_owner():
    greenlet = pytest.importorskip("greenlet")
    seen = []

    def request():
        owner = task_or_greenlet_owner(sys._getframe(0), None)
        seen.append(owner)
        assert owner.working_thread({}) == threading.get_ident()

    greenlet.greenlet(request).switch()
    owner = seen[0]
    assert isinstance(owner, GreenletOwner) and isinstance(owner, Owner)
    assert owner.scoped() and owner.loop_blocked_by is None and owner.hub() is None  # no gevent hub here


def test_a_stuck_thread_reuses_its_lines_until_it_moves():
    parked, go_on, deeper, done = (threading.Event() for _ in range(4))
    box: dict = {}

    def inner() -> None:
        deeper.set()
        done.wait(10)

    def request() -> None:
        box["starter"] = sys._getframe(0)
        parked.set()
        go_on.wait(10)
        inner()

    thread = threading.Thread(target=request)
    thread.start()
    try:
        assert parked.wait(10)
        owner = ThreadOwner(thread.ident, box["starter"])
        first = owner.capture(sys._current_frames(), None)
        again = owner.capture(sys._current_frames(), None)
        assert owner._last is not None and again == first and again is not first
        assert first[-1].name == "wait" and first[0].name == "request"
        go_on.set()
        assert deeper.wait(10)
        moved = owner.capture(sys._current_frames(), None)
        assert [line.name for line in moved][:2] == ["request", "inner"], moved
        owner.release()
        assert owner._last is None and owner.capture(sys._current_frames(), None) is None
    finally:
        go_on.set()
        done.set()
        thread.join()


def test_a_generator_innermost_is_never_reused():
    """A generator may be resumed by another caller at the same instruction:
    the same innermost frame no longer vouches for the frames outside it."""
    lock = threading.Lock()
    lock.acquire()
    box: dict = {}

    def blocked():
        lock.acquire(timeout=10)  # a C call: this generator's frame is the innermost
        yield

    def request() -> None:
        box["starter"] = sys._getframe(0)
        next(blocked())

    thread = threading.Thread(target=request)
    thread.start()
    try:
        for _ in range(1000):
            innermost = sys._current_frames().get(thread.ident)
            if innermost is not None and innermost.f_code.co_name == "blocked":
                break
            threading.Event().wait(0.01)
        owner = ThreadOwner(thread.ident, box["starter"])
        lines = owner.capture(sys._current_frames(), None)
        assert [line.name for line in lines] == ["request", "blocked"]
        assert owner._last is None
    finally:
        lock.release()
        thread.join()
