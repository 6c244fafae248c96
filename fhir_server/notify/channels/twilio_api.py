"""One call to a Twilio-compatible REST API (Messages or Calls) and the failure mapping the
dispatcher relies on: a refused request is permanent (try the next channel), a throttled,
failing or unreachable provider is transient (retry with back-off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from fhir_server.notify.messages import ChannelName, DeliveryFailed, OutboundMessage, Receipt
from fhir_server.settings import Settings

TRANSIENT_STATUSES = frozenset({408, 425, 429})  # timeout, too early, throttled


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    """Where and as whom to call the provider."""

    api_url: str
    account_sid: str
    auth_token: str
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioAccount | None:
        """The configured account; None when the API URL is not set."""
        if not settings.sms_api_url:
            return None
        return cls(settings.sms_api_url.rstrip("/"), settings.sms_account_sid,
                   settings.sms_auth_token, settings.sms_timeout_s)

    async def create(self, resource: str, form: dict[str, str], *, channel: ChannelName,
                     message: OutboundMessage) -> Receipt:
        """POST `form` to `Accounts/{sid}/{resource}.json`; the receipt carries the new sid."""
        url = f"{self.api_url}/Accounts/{self.account_sid}/{resource}.json"
        # Twilio's own header, and the IETF draft's for other compatible providers.
        headers = {"I-Twilio-Idempotency-Token": message.idempotency_key,
                   "Idempotency-Key": message.idempotency_key}
        # One client per send: Celery tasks may each run on their own event loop.
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            try:
                response = await client.post(url, data=form, headers=headers,
                                             auth=(self.account_sid, self.auth_token))
            except httpx.HTTPError as error:
                raise DeliveryFailed(f"{channel} provider unreachable: {error!r}") from error
        if response.status_code >= 400:
            raise _refusal(channel, response)
        sid = _json(response).get("sid")
        if not isinstance(sid, str) or not sid:
            raise DeliveryFailed(f"{channel} provider answered {response.status_code} "
                                 "without a sid")
        return Receipt(channel=channel, provider_id=sid, accepted_at=datetime.now(UTC))


def _refusal(channel: ChannelName, response: httpx.Response) -> DeliveryFailed:
    """The provider's error (its code and message when it sent them) as a DeliveryFailed."""
    body = _json(response)
    detail = " ".join(str(body[key]) for key in ("code", "message") if key in body)
    reason = f"{channel} provider refused with {response.status_code}" + (
        f": {detail}" if detail else "")
    permanent = response.status_code < 500 and response.status_code not in TRANSIENT_STATUSES
    return DeliveryFailed(reason, permanent=permanent)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
