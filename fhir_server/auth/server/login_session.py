"""The browser's login session: a random id in a cookie, and its HMAC in the login form.

Against login CSRF (another site posting our login form so that the victim's app ends up
with the attacker's account), `POST /login` needs the cookie and a `csrf_token` field equal to
HMAC(server secret, session id): another site can neither read the cookie nor compute the
field. The secret is in the shared state (`state.py`), so any worker process checks a form
another one served. The patient picker's ticket is bound to the same session.

The cookie is `HttpOnly; SameSite=Lax`, limited to the issuer's path, and `Secure` when the
issuer is https (TLS may end at a proxy, so the issuer URL, not the request, decides).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE: Final = "fhir_scheduler_login"
FIELD: Final = "csrf_token"
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")


class LoginSessions:
    """Issues login-session cookies and checks the forms posted with them."""

    def __init__(self, secret: bytes, issuer: str) -> None:
        self._secret = secret
        self._path = urlsplit(issuer).path or "/"
        self._secure = issuer.startswith("https://")

    def session_of(self, request: Request) -> str | None:
        """The well-formed session id in the request's cookie, if any."""
        session = request.cookies.get(COOKIE, "")
        return session if SESSION_ID.fullmatch(session) else None

    def current_or_new(self, request: Request) -> str:
        """The browser's session id, or a new one (set it with `keep`)."""
        return self.session_of(request) or secrets.token_urlsafe(32)

    def form_token(self, session: str) -> str:
        """The `csrf_token` value of forms served to `session`."""
        return hmac.new(self._secret, session.encode("ascii"), hashlib.sha256).hexdigest()

    def verified(self, request: Request, form: dict[str, str]) -> str | None:
        """The session of a form posted from our own page: cookie and field agree."""
        session = self.session_of(request)
        if session is None:
            return None
        return session if hmac.compare_digest(self.form_token(session),
                                              form.get(FIELD, "")) else None

    def keep(self, response: Response, session: str) -> None:
        """Set the session cookie on a page that carries its form."""
        response.set_cookie(COOKIE, session, path=self._path, httponly=True, samesite="lax",
                            secure=self._secure)
