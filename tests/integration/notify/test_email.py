"""SmtpSender against a real SMTP server (aiosmtpd): the MIME shape, a Message-ID stable per
idempotency key, login, and which failures are permanent (5xx) or worth a retry."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator

import pytest

from fhir_server.notify.channels.email import SmtpSender
from fhir_server.notify.channels.smtp_pool import SmtpPool
from fhir_server.notify.messages import (
    Attachment,
    ChannelName,
    DeliveryFailed,
    OutboundMessage,
)
from fhir_server.settings import Settings
from tests.support.smtp_sink import SmtpSink, free_port, running_smtp_sink

SENDER = "Riverside Clinic <no-reply@riverside.example.org>"
ICS = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as sink:
        yield sink


def message(key: str = "cr-1/attempt-1", **changes: object) -> OutboundMessage:
    fields: dict[str, object] = dict(
        channel=ChannelName.EMAIL, to="james.wilson@example.com", idempotency_key=key,
        subject="Appointment confirmed: Tue Mar 5, 10:00 AM EST",
        text="Dear James Wilson,\n\nYour appointment is confirmed.\n",
        html="<p>Dear James Wilson,</p><p>Your appointment is confirmed.</p>",
        attachments=(Attachment("invite.ics", "text/calendar; method=REQUEST; charset=utf-8",
                                ICS),),
        language="en")
    fields.update(changes)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def sender_for(sink: SmtpSink, **options: object) -> SmtpSender:
    return SmtpSender(host=sink.host, port=sink.port, sender=SENDER, timeout_s=5,
                      **options)  # type: ignore[arg-type]


async def test_the_relay_receives_text_html_and_the_invite(smtp_sink: SmtpSink) -> None:
    receipt = await sender_for(smtp_sink).send(message())

    [envelope] = smtp_sink.envelopes
    [email] = smtp_sink.messages()
    assert envelope.mail_from == "no-reply@riverside.example.org"
    assert envelope.rcpt_tos == ["james.wilson@example.com"]
    assert email["Subject"] == "Appointment confirmed: Tue Mar 5, 10:00 AM EST"
    assert email["From"] == SENDER and email["Auto-Submitted"] == "auto-generated"
    assert email.get_body(("plain",)).get_content().startswith("Dear James Wilson,")
    assert "<p>Your appointment is confirmed.</p>" in email.get_body(("html",)).get_content()
    [invite] = list(email.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "invite.ics"
    assert invite.get_content().encode() == ICS
    assert receipt.channel is ChannelName.EMAIL
    assert receipt.provider_id == email["Message-ID"]


async def test_the_message_id_is_stable_per_idempotency_key(smtp_sink: SmtpSink) -> None:
    sender = sender_for(smtp_sink)

    first = await sender.send(message("cr-1/attempt-1"))
    again = await sender.send(message("cr-1/attempt-1"))
    other = await sender.send(message("cr-2/attempt-1"))

    ids = [email["Message-ID"] for email in smtp_sink.messages()]
    assert ids == [first.provider_id, first.provider_id, other.provider_id]
    assert first.provider_id == again.provider_id != other.provider_id
    assert first.provider_id.endswith("@riverside.example.org>")


async def test_a_text_only_message_has_no_html_part(smtp_sink: SmtpSink) -> None:
    await sender_for(smtp_sink).send(message(html=None, attachments=()))

    [email] = smtp_sink.messages()
    assert email.get_content_type() == "text/plain"


async def test_credentials_are_used_when_configured(smtp_sink: SmtpSink) -> None:
    await sender_for(smtp_sink, username="clinic", password="s3cret").send(message())

    assert smtp_sink.logins == [("clinic", "s3cret")]
    assert len(smtp_sink.envelopes) == 1


def test_from_settings_reads_the_smtp_settings() -> None:
    settings = Settings(smtp_host="mail.example.org", smtp_port=2525, smtp_from=SENDER,
                        smtp_username="u", smtp_password="p", smtp_starttls=True,
                        smtp_timeout_s=3.5)

    sender = SmtpSender.from_settings(settings)

    assert sender.channel is ChannelName.EMAIL
    assert (sender._host, sender._port, sender._sender) == ("mail.example.org", 2525, SENDER)
    pool = vars(sender._pool)
    assert (pool["_username"], pool["_password"], pool["_timeout_s"]) == ("u", "p", 3.5)
    assert pool["_tls"] is not None


@pytest.mark.parametrize(("where", "reply", "permanent"), [
    ("rcpt", "550 5.1.1 No such user here", True),
    ("rcpt", "450 4.2.1 Mailbox busy, try later", False),
    ("data", "554 5.7.1 Message rejected as spam", True),
    ("data", "451 4.3.0 Local error in processing", False),
])
async def test_refusals_map_5xx_to_permanent_and_4xx_to_transient(
        smtp_sink: SmtpSink, where: str, reply: str, permanent: bool) -> None:
    setattr(smtp_sink, f"{where}_reply", reply)

    with pytest.raises(DeliveryFailed) as failed:
        await sender_for(smtp_sink).send(message())

    assert failed.value.permanent is permanent
    assert reply.split()[0] in failed.value.reason
    assert smtp_sink.envelopes == []


async def test_a_dropped_connection_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.hang_up = True

    with pytest.raises(DeliveryFailed) as failed:
        await sender_for(smtp_sink).send(message())

    assert failed.value.permanent is False


async def test_an_unreachable_relay_is_transient() -> None:
    sender = SmtpSender(host="127.0.0.1", port=free_port(), sender=SENDER, timeout_s=2)

    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(message())

    assert failed.value.permanent is False
    assert "unreachable" in failed.value.reason


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


async def test_a_relay_that_never_answers_times_out_as_transient(silent_server: int) -> None:
    sender = SmtpSender(host="127.0.0.1", port=silent_server, sender=SENDER, timeout_s=0.3)

    with pytest.raises(DeliveryFailed) as failed:
        await sender.send(message())

    assert failed.value.permanent is False



async def test_consecutive_messages_share_one_connection(
        smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    sender = sender_for(smtp_sink)
    connects = count_connects(monkeypatch)

    await sender.send(message("cr-1/attempt-1"))
    await sender.send(message("cr-2/attempt-1"))

    assert len(smtp_sink.envelopes) == 2
    assert connects == [1]


async def test_a_connection_dropped_while_idle_is_replaced(
        smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    sender = sender_for(smtp_sink)
    connects = count_connects(monkeypatch)
    await sender.send(message("cr-1/attempt-1"))
    [(idle, _)] = sender._pool._idle
    idle.sock.shutdown(socket.SHUT_RDWR)  # as if the relay had hung up

    await sender.send(message("cr-2/attempt-1"))

    assert len(smtp_sink.envelopes) == 2
    assert connects == [2]


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-element list counting the pool's new connections."""
    connects = [0]
    original = SmtpPool._connect

    def counting(pool: SmtpPool) -> smtplib.SMTP:
        connects[0] += 1
        return original(pool)

    monkeypatch.setattr(SmtpPool, "_connect", counting)
    return connects


async def test_words_beyond_ascii_arrive_intact(smtp_sink: SmtpSink) -> None:
    sender = SmtpSender(host=smtp_sink.host, port=smtp_sink.port, timeout_s=5,
                        sender="Clínica Río <no-reply@rio.example.org>")
    subject = "Recordatorio: su cita del martes 9 de julio, 10:00 EDT, con la Dra. Núñez " * 2

    await sender.send(message(subject=subject.strip(), text="Estimada María:\n",
                              html="<p>Estimada María:</p>"))

    [email] = smtp_sink.messages()
    assert email["From"] == "Clínica Río <no-reply@rio.example.org>"
    assert email["Subject"] == subject.strip()
    assert email.get_body(("plain",)).get_content() == "Estimada María:\n"
    assert email.get_body(("html",)).get_content() == "<p>Estimada María:</p>"
    raw = smtp_sink.envelopes[0].original_content or b""
    assert [line for line in raw.splitlines() if len(line) > 78] == []
