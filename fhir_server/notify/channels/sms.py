"""SMS through a Twilio-compatible Messages API."""

from __future__ import annotations

from fhir_server.notify.channels.twilio_api import TwilioAccount
from fhir_server.notify.messages import ChannelName, OutboundMessage, Receipt
from fhir_server.settings import Settings


class SmsSender:
    """Sends `message.text` as one SMS from the clinic's number."""

    channel = ChannelName.SMS

    def __init__(self, account: TwilioAccount, *, from_number: str) -> None:
        self._account = account
        self._from = from_number

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsSender | None:
        """The sender, or None when the API URL or the sending number is not configured."""
        account = TwilioAccount.from_settings(settings)
        if account is None or not settings.sms_from:
            return None
        return cls(account, from_number=settings.sms_from)

    async def send(self, message: OutboundMessage) -> Receipt:
        """Create the Message; its `sid` is the receipt's provider id."""
        form = {"To": message.to, "From": self._from, "Body": message.text}
        return await self._account.create("Messages", form, channel=self.channel,
                                          message=message)
