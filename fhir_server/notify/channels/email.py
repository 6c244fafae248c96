"""Email over SMTP with the standard library, in a worker thread so the event loop never
blocks. The Message-ID is derived from the idempotency key: a message re-sent after a crash
carries the same Message-ID, so the relay, the recipient's client and our records can all
recognise it as the same message."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from fhir_server.notify.messages import (
    Attachment,
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


def build_email(message: OutboundMessage, *, sender: str, now: datetime) -> EmailMessage:
    """Text with an HTML alternative, then the attachments (an ICS invite or cancellation)."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now)
    email["Message-ID"] = message_id(message.idempotency_key, sender=sender)
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        _attach(email, attachment)
    email["Content-Language"] = message.language  # after the body: set_content drops it
    return email


class SmtpSender:
    """Sends email through one SMTP relay (STARTTLS and login when configured)."""

    channel = ChannelName.EMAIL

    def __init__(self, *, host: str, port: int, sender: str, username: str = "",
                 password: str = "", starttls: bool = False, timeout_s: float = 10.0) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._starttls, self._timeout_s = starttls, timeout_s

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
        now = datetime.now(UTC)
        email = build_email(message, sender=self._sender, now=now)
        await asyncio.to_thread(self._deliver, email)
        return Receipt(channel=self.channel, provider_id=str(email["Message-ID"]),
                       accepted_at=datetime.now(UTC))

    def _deliver(self, email: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password)
                smtp.send_message(email)
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


def _attach(email: EmailMessage, attachment: Attachment) -> None:
    """`text/calendar; method=REQUEST` keeps its parameters, so calendars see an iTIP invite."""
    mime, *parameters = (part.strip() for part in attachment.content_type.split(";"))
    maintype, _, subtype = mime.partition("/")
    params = dict(p.split("=", 1) for p in parameters if "=" in p)
    email.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                         filename=attachment.filename, params=params)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
