"""Sign-in sessions, kept on the server: the browser holds only a signed, random session id.

The API key never leaves the server once typed in: not in a URL, not in a cookie, not in a page. The
cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it); every form
that changes something carries the session's CSRF token, compared in constant time. A session ends at
sign-out, after `ttl_s`, or after `idle_s` without a request. Sessions live in this process's memory:
the console runs as one replica (a restart signs everyone out, which a 3 a.m. operator survives).
"""

import hmac
import secrets
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE_NAME = "oms_console_session"


@dataclass
class Session:
    session_id: str
    api_key: str
    operator: str
    locale: str
    tz: str
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created_at: float = field(default_factory=time.monotonic)
    seen_at: float = field(default_factory=time.monotonic)

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf_token.encode())


class SessionStore:
    def __init__(self, secret: str, *, ttl_s: float, idle_s: float) -> None:
        self._signer = URLSafeSerializer(secret, salt="oms-console-session")
        self._sessions: dict[str, Session] = {}
        self._ttl_s = ttl_s
        self._idle_s = idle_s

    def create(self, api_key: str, operator: str, locale: str, tz: str) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        self._expire()
        session = Session(secrets.token_urlsafe(32), api_key, operator, locale, tz)
        self._sessions[session.session_id] = session
        return session, self._signer.dumps(session.session_id)

    def find(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            session_id = self._signer.loads(cookie)
        except BadSignature:
            return None
        session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        now = time.monotonic()
        if session is None:
            return None
        if now - session.created_at > self._ttl_s or now - session.seen_at > self._idle_s:
            self._sessions.pop(session.session_id, None)
            return None
        session.seen_at = now
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.created_at > self._ttl_s or now - s.seen_at > self._idle_s:
                del self._sessions[sid]
