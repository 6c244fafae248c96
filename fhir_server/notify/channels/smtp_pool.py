"""SMTP connections kept open between messages: otherwise every message pays for the
connection, the greeting, EHLO, QUIT (and STARTTLS and login), on both sides.

A connection idle for longer than `IDLE_S` is closed, not reused: relays drop idle clients
after a minute or more. A reused connection the relay dropped anyway fails with
`SMTPServerDisconnected` (smtplib reports socket errors and timeouts that way too); the
message is then sent once more over a fresh connection. Should the drop have come after the
relay took the data, that second copy carries the same Message-ID, as after a worker crash."""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Sequence

IDLE_S = 20.0
MAX_IDLE = 16  # more than the dispatcher's concurrent sends per process


class SmtpPool:
    """Idle authenticated connections to one relay, each used by one thread at a time."""

    def __init__(self, host: str, port: int, *, username: str, password: str, starttls: bool,
                 timeout_s: float) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._username, self._password = username, password
        self._tls = ssl.create_default_context() if starttls else None
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()

    def send(self, sender: str, to: str, data: bytes, options: Sequence[str] = ()) -> None:
        """One mail transaction; raises smtplib's errors (that connection is then closed)."""
        reused = self._take()
        if reused is not None:
            try:
                self._transact(reused, sender, to, data, options)
                return
            except smtplib.SMTPServerDisconnected:
                pass  # dropped while it sat idle: once more on a fresh connection
        self._transact(self._connect(), sender, to, data, options)

    def _transact(self, smtp: smtplib.SMTP, sender: str, to: str, data: bytes,
                  options: Sequence[str]) -> None:
        try:
            smtp.sendmail(sender, [to], data, mail_options=options)
        except BaseException:
            smtp.close()
            raise
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((smtp, time.monotonic()))
                return
        smtp.close()

    def _take(self) -> smtplib.SMTP | None:
        """The most recently used idle connection; older ones past `IDLE_S` are closed."""
        now = time.monotonic()
        with self._lock:
            stale = [smtp for smtp, since in self._idle if now - since > IDLE_S]
            self._idle = [(smtp, since) for smtp, since in self._idle if now - since <= IDLE_S]
            taken = self._idle.pop()[0] if self._idle else None
        for smtp in stale:
            smtp.close()
        return taken

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        try:
            if self._tls is not None:
                smtp.starttls(context=self._tls)
            if self._username:
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp
