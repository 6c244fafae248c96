"""Voice calls with a spoken script through a Twilio-compatible Calls API."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from fhir_server.notify.channels.twilio_api import TwilioAccount
from fhir_server.notify.messages import ChannelName, OutboundMessage, Receipt
from fhir_server.settings import Settings


def spoken_twiml(script: str, *, language: str) -> str:
    """TwiML that says `script` twice (a listener often misses the start), XML-escaped."""
    say = f"<Say language={quoteattr(language)}>{escape(script)}</Say>"
    return f'<Response>{say}<Pause length="1"/>{say}</Response>'


class VoiceSender:
    """Calls the patient and reads `message.text` in the message's language."""

    channel = ChannelName.VOICE

    def __init__(self, account: TwilioAccount, *, from_number: str) -> None:
        self._account = account
        self._from = from_number

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceSender | None:
        """The sender, or None without an API URL or a calling number (`voice_from`, else
        `sms_from`)."""
        account = TwilioAccount.from_settings(settings)
        from_number = settings.voice_from or settings.sms_from
        if account is None or not from_number:
            return None
        return cls(account, from_number=from_number)

    async def send(self, message: OutboundMessage) -> Receipt:
        """Create the Call; its `sid` is the receipt's provider id."""
        form = {"To": message.to, "From": self._from,
                "Twiml": spoken_twiml(message.text, language=message.language)}
        return await self._account.create("Calls", form, channel=self.channel,
                                          message=message)
