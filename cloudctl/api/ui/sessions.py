"""Portal sessions: who signed in through this browser, and the CSRF token of their forms.

Invariants:
- A session id is 256 random bits, sent only in a cookie that is ``HttpOnly``,
  ``SameSite=Lax``, scoped to ``/ui`` and ``Secure`` whenever the portal is reached over TLS.
- Signing in always creates a new session id and forgets the one the browser came with, so
  an id planted before sign-in (session fixation) never becomes an authenticated session.
- Every form of a session carries its CSRF token; a POST whose token does not match (compared
  in constant time) changes nothing. The sign-in form, which has no session yet, carries a
  token bound to a short-lived cookie of its own (double submit).
- The token a department signed in with stays in this process's memory only: each page
  authenticates it again with ``identity.authenticate``, so a revoked or expired token ends
  the session at once. Sessions end after ``IDLE_S`` without use or ``ABSOLUTE_S`` after
  sign-in, whichever comes first; a page's own refresh of its live region (``REFRESH_HEADER``)
  is not use. One token holds at most ``SESSIONS_PER_TOKEN`` sessions (its own idle-longest
  one ends first), the process ``MAX_SESSIONS``. A restart signs everyone out. Several API
  replicas need sticky sessions (or a shared session store behind ``SessionStore``'s methods).
- The sign-in page shows a notice (signed out, why a session ended) only when its address
  carries the notice's MAC under this process's key: a link from anywhere else cannot put
  its own words on the portal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import threading

from cloudctl import clock as clocks

COOKIE = "cloudctl_session"
LOGIN_COOKIE = "cloudctl_signin_csrf"
COOKIE_PATH = "/ui"
IDLE_S = 30 * 60.0
ABSOLUTE_S = 8 * 3600.0
MAX_SESSIONS = 10_000
"""Sessions this process keeps; past that, a new one ends the session idle longest ..."""
SESSIONS_PER_TOKEN = 16
"""... but one token holds at most this many: its next sign-in ends its own session idle
longest, so one token signing in over and over cannot sign anyone else out."""
REFRESH_HEADER = "X-Portal-Refresh"
"""Sent by portal.js when it refreshes a live region: the script is busy, not the visitor."""


@dataclasses.dataclass
class Session:
    id: str
    bearer: str
    """The token the session signed in with, re-authenticated on every page."""
    csrf: str
    created_at: float
    seen_at: float
    flashes: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """Messages for the next page: (kind, text), kind ``ok`` or ``error``."""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same_secret(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())


class SessionStore:
    """Sessions of this process, by id; thread-safe."""

    def __init__(self, clock: clocks.Clock) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._notice_key = secrets.token_bytes(32)

    def start(self, *, bearer: str, replacing: str | None) -> Session:
        """A new session for ``bearer``; the session id the browser came with is forgotten."""
        now = self._clock.now()
        session = Session(id=new_secret(), bearer=bearer, csrf=new_secret(), created_at=now, seen_at=now)
        with self._lock:
            if replacing is not None:
                self._sessions.pop(replacing, None)
            self._expire(now)
            own = [s for s in self._sessions.values() if s.bearer == bearer]
            if len(own) >= SESSIONS_PER_TOKEN:
                del self._sessions[min(own, key=lambda s: s.seen_at).id]
            elif len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.seen_at)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None, *, used: bool = True) -> Session | None:
        """The live session of this id (marked used, if ``used``), or ``None``."""
        if not session_id:
            return None
        now = self._clock.now()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen_at > IDLE_S or now - session.created_at > ABSOLUTE_S:
                del self._sessions[session_id]
                return None
            if used:
                session.seen_at = now
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def notice_mac(self, notice: str) -> str:
        """What the sign-in page's address carries beside ``notice`` to have it shown."""
        return hmac.new(self._notice_key, notice.encode(), hashlib.sha256).hexdigest()

    def is_own_notice(self, notice: str, mac: str) -> bool:
        return same_secret(self.notice_mac(notice), mac)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        stale = [
            s.id
            for s in self._sessions.values()
            if now - s.seen_at > IDLE_S or now - s.created_at > ABSOLUTE_S
        ]
        for session_id in stale:
            del self._sessions[session_id]
