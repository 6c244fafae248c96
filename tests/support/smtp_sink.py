"""A real SMTP server for tests: aiosmtpd on a free local port, collecting what it accepts,
and told per test to refuse a recipient, refuse the data, or hang up mid-transaction."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SmtpSink:
    """The handler: `rcpt_reply` / `data_reply` (e.g. "550 5.1.1 No such user") override the
    250; `hang_up` closes the connection on DATA; `logins` records AUTH credentials."""

    host: str = "127.0.0.1"
    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None
    hang_up: bool = False
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.hang_up:
            server.transport.close()
            return "421 closing"
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    def messages(self) -> list[EmailMessage]:
        """Every accepted message, parsed."""
        return [message_from_bytes(e.original_content or b"", policy=policy.default)  # type: ignore[misc]
                for e in self.envelopes]


@contextmanager
def running_smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP server that accepts AUTH LOGIN/PLAIN without TLS (tests only)."""
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port,
                            authenticator=sink.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
