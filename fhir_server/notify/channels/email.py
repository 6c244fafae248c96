"""Email over SMTP with the standard library, in a worker thread so the event loop never
blocks. The Message-ID is derived from the idempotency key: a message re-sent after a crash
carries the same Message-ID, so the relay, the recipient's client and our records can all
recognise it as the same message. Connections are kept open between messages (`SmtpPool`)."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from datetime import UTC, datetime
from email.utils import formataddr, parseaddr
from functools import lru_cache

from fhir_server.notify.channels.mime import email_bytes
from fhir_server.notify.channels.smtp_pool import SmtpPool
from fhir_server.notify.messages import (
    ChannelName,
    DeliveryFailed,
    OutboundMessage,
    Receipt,
)
from fhir_server.settings import Settings


def message_id(idempotency_key: str, *, sender: str) -> str:
    """`<sha256(key)[:32]@sender's domain>`: stable per key, unique per deployment domain."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{digest}@{domain}>"


class SmtpSender:
    """Sends email through one SMTP relay (STARTTLS and login when configured)."""

    channel = ChannelName.EMAIL

    def __init__(self, *, host: str, port: int, sender: str, username: str = "",
                 password: str = "", starttls: bool = False, timeout_s: float = 10.0) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._pool = SmtpPool(host, port, username=username, password=password,
                              starttls=starttls, timeout_s=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSender:
        """The sender over the configured relay (SMTP settings all have defaults)."""
        return cls(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                   username=settings.smtp_username, password=settings.smtp_password,
                   starttls=settings.smtp_starttls, timeout_s=settings.smtp_timeout_s)

    async def send(self, message: OutboundMessage) -> Receipt:
        """Hand the message to the relay; the receipt's provider id is its Message-ID.

        Raises `DeliveryFailed`: permanent for 5xx replies (e.g. an unknown recipient),
        transient for 4xx replies, timeouts and connection errors."""
        id = message_id(message.idempotency_key, sender=self._sender)
        data = email_bytes(message, sender=_from_header(self._sender), message_id=id,
                           now=datetime.now(UTC))
        await asyncio.to_thread(self._deliver, message.to, data)
        return Receipt(channel=self.channel, provider_id=id, accepted_at=datetime.now(UTC))

    def _deliver(self, to: str, data: bytes) -> None:
        envelope_from = parseaddr(self._sender)[1]
        options = () if envelope_from.isascii() and to.isascii() else ("SMTPUTF8",)
        try:
            self._pool.send(envelope_from, to, data, options)
        except smtplib.SMTPRecipientsRefused as refused:
            codes = [code for code, _ in refused.recipients.values()]
            raise DeliveryFailed(f"recipient refused: {refused.recipients}",
                                 permanent=all(code >= 500 for code in codes)) from refused
        except smtplib.SMTPResponseException as reply:
            raise DeliveryFailed(f"SMTP {reply.smtp_code}: {_text(reply.smtp_error)}",
                                 permanent=reply.smtp_code >= 500) from reply
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP relay {self._host}:{self._port} unreachable: {error}",
                                 permanent=False) from error


@lru_cache(maxsize=8)
def _from_header(sender: str) -> str:
    """The From header: the display name RFC 2047-encoded when it is not ASCII."""
    return formataddr(parseaddr(sender), charset="utf-8")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
