"""The broker's subscription table on its own: who gets an event, and how often."""

from __future__ import annotations

from typing import cast

import pytest

from eventbus._backend import Outbox
from eventbus.broker._routing import Router
from eventbus.broker._session import Session


class FakeSession(Outbox):
    """A connection's outbound side with a transport that records each write, and the
    reply grants the router hands out. ``accepts=False``: an outbound limit of 0 (full)."""

    def __init__(self, name: str, *, accepts: bool = True) -> None:
        self.got: list[bytes] = []
        super().__init__(self.got.append, lambda: 0, 1 << 20 if accepts else 0, [])
        self.name = name
        self.subscriptions: dict[int, tuple[str, str]] = {}
        self.filter_refs: dict[str, int] = {}
        self.replies: list[str] = []
        SESSIONS.append(self)

    def allow_reply(self, inbox: str) -> None:
        self.replies.append(inbox)


SESSIONS: list[FakeSession] = []


@pytest.fixture(autouse=True)
def _fresh_sessions() -> None:
    SESSIONS.clear()


def session(name: str, *, accepts: bool = True) -> FakeSession:
    return FakeSession(name, accepts=accepts)


def fan(router: Router, topic: str, data: bytes, reply_to: str = "") -> tuple[int, int]:
    """``router.fan_out``, then every session's frames written (one write per event)."""
    result = router.fan_out(topic, data, reply_to=reply_to)
    for fake in SESSIONS:
        fake.flush()
    return result


def as_session(fake: FakeSession) -> Session:
    return cast(Session, fake)


def test_several_matching_filters_deliver_once() -> None:
    router = Router(256, 16)
    a = session("a")
    router.subscribe(as_session(a), 1, "x.#", "")
    router.subscribe(as_session(a), 2, "x.+", "")
    router.subscribe(as_session(a), 3, "x.y", "")
    assert fan(router, "x.y", b"e", reply_to="in.1") == (1, 0)
    assert a.got == [b"e"]
    assert a.replies == ["in.1"]


def test_groups_take_turns_and_skip_plain_subscribers() -> None:
    router = Router(256, 16)
    w1, w2, plain = session("w1"), session("w2"), session("plain")
    router.subscribe(as_session(w1), 1, "task", "workers")
    router.subscribe(as_session(w2), 1, "task", "workers")
    router.subscribe(as_session(plain), 1, "task", "")
    router.subscribe(as_session(plain), 2, "task", "others")
    for index in range(4):
        assert fan(router, "task", bytes([index])) == (2, 0)
    assert w1.got == [b"\x00", b"\x02"]
    assert w2.got == [b"\x01", b"\x03"]
    # A member of "others" that is also a plain subscriber gets each event once.
    assert len(plain.got) == 4


def test_closed_and_full_sessions() -> None:
    router = Router(256, 16)
    gone, full, fine = session("gone"), session("full", accepts=False), session("fine")
    gone.closed = True
    for index, each in enumerate((gone, full, fine)):
        router.subscribe(as_session(each), index, "t.+", "")
    router.subscribe(as_session(gone), 9, "t.+", "g")
    assert fan(router, "t.a", b"e") == (1, 1)
    assert fan(router, "u", b"e") == (0, 0)


def test_unsubscribe_and_remove_session_update_the_answers() -> None:
    router = Router(256, 16)
    a, b = session("a"), session("b")
    router.subscribe(as_session(a), 1, "t.#", "")
    router.subscribe(as_session(a), 2, "t.#", "")
    router.subscribe(as_session(b), 1, "t.x", "g")
    assert fan(router, "t.x", b"1") == (2, 0)
    assert router.unsubscribe(as_session(a), 1)
    assert not router.unsubscribe(as_session(a), 1)
    assert fan(router, "t.x", b"2") == (2, 0)  # a still has subscription 2
    assert router.remove_session(as_session(b)) == 1
    assert fan(router, "t.x", b"3") == (1, 0)
    assert router.remove_session(as_session(a)) == 1
    assert fan(router, "t.x", b"4") == (0, 0)
