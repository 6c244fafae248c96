"""An outbound email serialised straight to bytes.

The layout is fixed: the text part, its HTML alternative, then attachments (an ICS invite).
The email package builds and flattens that in ~8 ms (header parsing in `EmailMessage`, folding
in the generator); writing the few headers and base64 parts directly costs ~0.1 ms, and the
result parses back to the same message. Attachment types and filenames are ours (ASCII)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from email.header import Header
from email.utils import format_datetime

from fhir_server.notify.messages import Attachment, OutboundMessage

CRLF = b"\r\n"


Headers = list[tuple[str, str]]
Part = tuple[Headers, bytes]  # a MIME entity's own headers and its body


def email_bytes(message: OutboundMessage, *, sender: str, message_id: str,
                now: datetime) -> bytes:
    """The whole message (headers and body) as it goes over SMTP, CRLF line endings."""
    boundary = message_id.strip("<>").partition("@")[0][:16]  # header lines within 78
    entity = _text_part(message.text, "plain")
    if message.html is not None:
        entity = _multipart("alternative", [entity, _text_part(message.html, "html")],
                            f"=_alt_{boundary}")
    if message.attachments:
        entity = _multipart("mixed", [entity, *map(_attachment, message.attachments)],
                            f"=_mix_{boundary}")
    headers, body = entity
    return _serialised(([
        ("From", sender), ("To", message.to), ("Subject", _encoded(message.subject)),
        ("Date", format_datetime(now)), ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies to us
        ("Content-Language", message.language), ("MIME-Version", "1.0"), *headers], body))


def _encoded(value: str) -> str:
    """An unstructured header value: RFC 2047 words when not ASCII, folded when long."""
    if value.isascii() and len(value) < 70:
        return value
    return Header(value, None if value.isascii() else "utf-8",
                  header_name="Subject").encode(linesep="\r\n")


def _text_part(text: str, subtype: str) -> Part:
    return _part(f'text/{subtype}; charset="utf-8"', text.encode())


def _attachment(attachment: Attachment) -> Part:
    """`text/calendar; method=REQUEST` keeps its parameters, so calendars see an iTIP invite."""
    mime, *parameters = (part.strip() for part in attachment.content_type.split(";"))
    params = "".join(f'; {name.strip()}="{value.strip()}"'
                     for name, _, value in (p.partition("=") for p in parameters) if value)
    headers, body = _part(mime + params, attachment.data)
    return [*headers, ("Content-Disposition",
                       f'attachment; filename="{attachment.filename}"')], body


def _part(content_type: str, data: bytes) -> Part:
    return ([("Content-Type", content_type), ("Content-Transfer-Encoding", "base64")],
            base64.encodebytes(data).replace(b"\n", CRLF))


def _multipart(subtype: str, parts: Sequence[Part], boundary: str) -> Part:
    delimiter = f"--{boundary}".encode()
    body = b"".join(delimiter + CRLF + _serialised(part) + CRLF for part in parts)
    return ([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')],
            body + delimiter + b"--" + CRLF)


def _serialised(part: Part) -> bytes:
    """Header lines, a blank line, the body (UTF-8 headers only in SMTPUTF8 addresses)."""
    headers, body = part
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode() + CRLF + body
