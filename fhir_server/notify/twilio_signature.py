"""Twilio's webhook signature (`X-Twilio-Signature`): base64 HMAC-SHA1, keyed with the auth
token, over the full request URL followed by every POST parameter's name and value, sorted
by name. Pure, so both the webhook and tests use the one definition."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends with a request to `url` carrying `params`."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_is_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]],
                       signature: str | None) -> bool:
    """True when `signature` is Twilio's for this request (constant-time comparison)."""
    if not auth_token or not signature:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
