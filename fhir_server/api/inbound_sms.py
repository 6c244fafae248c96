"""Patients' SMS replies: Twilio posts each inbound message to `POST /notify/sms/inbound`.

`C` confirms, `X` cancels and `R` answers with a reschedule link, for the sender's next
booked or pending appointment; anything else gets a short help text. The request must carry
a valid `X-Twilio-Signature` for `{public origin}/notify/sms/inbound` (the URL configured at
the provider), else 403. The answer is TwiML, in the patient's language where we have it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from fhir_server.api.dependencies import fhir_context
from fhir_server.api.patient_audit import audit_reply
from fhir_server.fhir.errors import FhirError
from fhir_server.notify.links import SignedLinks
from fhir_server.notify.twilio_signature import signature_is_valid
from fhir_server.services.appointment_views import AppointmentView
from fhir_server.services.patient_replies import (
    Outcome,
    cancel_by_patient,
    confirm_by_patient,
    sender_of,
)

log = logging.getLogger("fhir_server.inbound_sms")

router = APIRouter()
PATH = "/notify/sms/inbound"
KEYWORDS = {"C": "confirm", "CONFIRM": "confirm", "YES": "confirm", "SI": "confirm",
            "SÍ": "confirm", "X": "cancel", "CANCEL": "cancel", "CANCELAR": "cancel",
            "R": "reschedule", "RESCHEDULE": "reschedule"}
REPLIES = {
    "en": {
        Outcome.CONFIRMED: "Thank you. Your appointment on {when} is confirmed.",
        Outcome.ACKNOWLEDGED: "Thank you, we have your confirmation for {when}. The clinic "
                              "will confirm the booking.",
        Outcome.CANCELLED: "Your appointment on {when} is cancelled. Please call us if you "
                           "would like a new time.",
        "reschedule": "To choose a new time for your appointment on {when}, open {url}",
        "help": "Reply C to confirm, X to cancel or R to reschedule your appointment on "
                "{when}.",
        "none": "We could not find an upcoming appointment for this number. Please call "
                "the clinic.",
        "failed": "Sorry, we could not update your appointment. Please call the clinic.",
    },
    "es": {
        Outcome.CONFIRMED: "Gracias. Su cita del {when} está confirmada.",
        Outcome.ACKNOWLEDGED: "Gracias, hemos recibido su confirmación para el {when}. La "
                              "clínica confirmará la cita.",
        Outcome.CANCELLED: "Su cita del {when} ha sido cancelada. Llámenos si desea una "
                           "nueva hora.",
        "reschedule": "Para elegir otra hora para su cita del {when}, abra {url}",
        "help": "Responda C para confirmar, X para cancelar o R para cambiar su cita del "
                "{when}.",
        "none": "No encontramos ninguna cita próxima para este número. Por favor, llame a "
                "la clínica.",
        "failed": "Lo sentimos, no pudimos actualizar su cita. Por favor, llame a la "
                  "clínica.",
    },
}
_WHEN = {"en": "%a %d %b at %H:%M", "es": "%d/%m/%Y a las %H:%M"}


@router.post(PATH)
async def inbound_sms(request: Request) -> Response:
    """Act on a patient's reply and answer in TwiML; 403 unless Twilio signed it."""
    params = parse_qsl((await request.body()).decode("utf-8", "replace"),
                       keep_blank_values=True)
    links: SignedLinks = request.app.state.links
    url = links.public_url + PATH + (f"?{request.url.query}" if request.url.query else "")
    if not signature_is_valid(request.app.state.sms_auth_token, url, params,
                              request.headers.get("X-Twilio-Signature")):
        log.warning("inbound SMS refused: missing or invalid X-Twilio-Signature")
        return PlainTextResponse("Invalid signature", status_code=403)
    form = dict(params)
    ctx, now = fhir_context(request), datetime.now(UTC)
    sender = await sender_of(ctx, form.get("From", ""), now=now)
    language = _supported(sender.language if sender else None)
    words = REPLIES[language]
    if sender is None or sender.upcoming is None:
        return _twiml(words["none"])
    upcoming, keyword = sender.upcoming, KEYWORDS.get(form.get("Body", "").strip().upper())
    when = _when(upcoming, language)
    if keyword == "reschedule":
        return _twiml(words["reschedule"].format(when=when, url=links.reschedule(upcoming.id)))
    if keyword is None:
        return _twiml(words["help"].format(when=when))
    act = confirm_by_patient if keyword == "confirm" else cancel_by_patient
    try:
        reply = await act(ctx, upcoming.id, now=now, via=f"by SMS ({form.get('MessageSid')})")
    except FhirError as error:
        log.warning("SMS %s of Appointment/%s failed: %s", keyword, upcoming.id, error)
        return _twiml(words["failed"])
    audit_reply(request, reply, channel="sms-reply")
    return _twiml(words.get(reply.outcome, words["failed"]).format(when=when))


def _supported(language: str | None) -> str:
    base = (language or "en").split("-", 1)[0].lower()
    return base if base in REPLIES else "en"


def _when(view: AppointmentView, language: str) -> str:
    start = view.local_start
    return start.strftime(_WHEN[language]) if start else ""


def _twiml(message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(message)}' \
           f"</Message></Response>"
    return Response(body, media_type="application/xml")
