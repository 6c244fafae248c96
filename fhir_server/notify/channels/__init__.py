"""Delivery channels: one Sender per configured channel (email, SMS, voice)."""

from __future__ import annotations

from fhir_server.notify.channels.email import SmtpSender
from fhir_server.notify.channels.sms import SmsSender
from fhir_server.notify.channels.voice import VoiceSender
from fhir_server.notify.messages import ChannelName, Sender
from fhir_server.settings import Settings


def build_senders(settings: Settings) -> dict[ChannelName, Sender]:
    """Email always (SMTP has defaults); SMS and voice when their provider is configured."""
    senders: dict[ChannelName, Sender] = {ChannelName.EMAIL: SmtpSender.from_settings(settings)}
    for sender in (SmsSender.from_settings(settings), VoiceSender.from_settings(settings)):
        if sender is not None:
            senders[sender.channel] = sender
    return senders
