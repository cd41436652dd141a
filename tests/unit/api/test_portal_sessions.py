"""The portal's session table: one token cannot crowd the others out of it."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl.api.ui import sessions


def test_a_token_signing_in_again_and_again_ends_only_its_own_sessions() -> None:
    clock = clocks.ManualClock(start=0)
    store = sessions.SessionStore(clock)
    victim = store.start(bearer="cct_victim.secret", replacing=None)
    clock.advance(1)
    attacker = []
    for _ in range(sessions.SESSIONS_PER_TOKEN * 3):
        attacker.append(store.start(bearer="cct_attacker.secret", replacing=None))
        clock.advance(1)

    assert store.find(victim.id) is not None  # idle longest of all, and still signed in
    live = [s for s in attacker if store.find(s.id, used=False) is not None]
    assert live == attacker[-sessions.SESSIONS_PER_TOKEN :]  # its newest ones, no more
    assert len(store) == sessions.SESSIONS_PER_TOKEN + 1


def test_a_full_table_ends_the_session_idle_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 3)
    clock = clocks.ManualClock(start=0)
    store = sessions.SessionStore(clock)
    started = []
    for number in range(3):
        started.append(store.start(bearer=f"cct_{number}.secret", replacing=None))
        clock.advance(1)
    store.find(started[0].id)  # used now: the first is no longer the one idle longest

    newest = store.start(bearer="cct_3.secret", replacing=None)

    assert [store.find(s.id, used=False) is not None for s in [*started, newest]] == [True, False, True, True]
