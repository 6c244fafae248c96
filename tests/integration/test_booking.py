"""Booking services on both stores: claims, releases, holds, recovery, overbooking, seats,
replacements."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from fhir_server.fhir.errors import BusinessRuleViolation, Conflict
from fhir_server.fhir.instants import format_instant
from fhir_server.fhir.search.model import StoreQuery
from fhir_server.scheduling.availability import SLOT_EMERGENCY_RESERVE_URL
from fhir_server.scheduling.slot_hold import (
    OVERBOOKING_URL,
    REPLACES_URL,
    held,
    parse_hold,
    replaced_id,
)
from fhir_server.services import booking, booking_recovery
from fhir_server.services.booking import BookingOptions
from fhir_server.services.context import FhirContext
from fhir_server.services.versions import next_version
from fhir_server.services.wiring import make_context
from fhir_server.settings import REPO_ROOT
from fhir_server.store.protocol import Store, VersionWrite

NOW = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
DAY = datetime(2030, 3, 4, tzinfo=UTC)


@pytest.fixture
def ctx(store: Store) -> FhirContext:
    return make_context(store, capability_dir=REPO_ROOT / "capability",
                        base_url="http://testserver/fhir")


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


async def put(ctx: FhirContext, resource: dict[str, Any]) -> None:
    kind, id = resource["resourceType"], resource["id"]
    current = await ctx.store.read(kind, id)
    await ctx.store.commit([next_version(ctx, dict(resource), resource_type=kind, id=id,
                                         current=current, now=NOW, method="PUT")])


async def schedule(ctx: FhirContext, id: str, actor: str) -> None:
    await put(ctx, {"resourceType": "Schedule", "id": id, "actor": [{"reference": actor}]})


async def slot(ctx: FhirContext, id: str, *, schedule_id: str = "sch-ada", hour: float = 10,
               minutes: int = 30, status: str = "free", **extra: Any) -> None:
    await put(ctx, {"resourceType": "Slot", "id": id, "status": status,
                    "schedule": {"reference": f"Schedule/{schedule_id}"},
                    "start": format_instant(at(hour)),
                    "end": format_instant(at(hour) + timedelta(minutes=minutes)), **extra})


def appointment(*slots: str, status: str = "booked", hour: float = 10, minutes: int = 30,
                actors: Sequence[str] = ("Patient/maria", "Practitioner/ada"),
                **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": status,
            "start": format_instant(at(hour)),
            "end": format_instant(at(hour) + timedelta(minutes=minutes)),
            "slot": [{"reference": f"Slot/{s}"} for s in slots],
            "participant": [{"actor": {"reference": a}, "status": "accepted"} for a in actors],
            **extra}


async def body(ctx: FhirContext, resource_type: str, id: str) -> dict[str, Any]:
    stored = await ctx.store.read(resource_type, id)
    assert stored is not None and stored.body is not None
    return dict(orjson.loads(stored.body))


async def slot_status(ctx: FhirContext, id: str) -> str:
    return str((await body(ctx, "Slot", id))["status"])


async def appointment_count(ctx: FhirContext) -> int:
    page = await ctx.store.search(StoreQuery("Appointment", with_total=True))
    return page.total or 0


@pytest.fixture
async def clinic(ctx: FhirContext) -> FhirContext:
    await schedule(ctx, "sch-ada", "Practitioner/ada")
    return ctx


async def test_booking_makes_the_slot_busy_without_a_hold(clinic: FhirContext) -> None:
    await slot(clinic, "s1")

    stored = await booking.book(clinic, appointment("s1"), now=NOW)

    assert stored.version_id == 1
    assert await slot_status(clinic, "s1") == "busy"
    assert parse_hold(await body(clinic, "Slot", "s1")) is None
    assert (await body(clinic, "Appointment", stored.id))["status"] == "booked"


async def test_a_lost_claim_releases_earlier_claims_and_writes_no_appointment(
        clinic: FhirContext) -> None:
    await slot(clinic, "a", minutes=30)
    await slot(clinic, "b", hour=10.5, status="busy")

    with pytest.raises(Conflict, match="Requested time slot is no longer available"):
        await booking.book(clinic, appointment("a", "b", minutes=60), now=NOW)

    released = await body(clinic, "Slot", "a")
    assert released["status"] == "free" and "extension" not in released
    assert await slot_status(clinic, "b") == "busy"
    assert await appointment_count(clinic) == 0


class RecordingStore:
    """Delegates to a store and records the ids of the slot versions it is asked to write."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.slot_writes = inner, []  # type: list[str]

    async def commit(self, writes: Sequence[VersionWrite]) -> Any:
        self.slot_writes += [w.id for w in writes if w.resource_type == "Slot"]
        return await self.inner.commit(writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_slots_are_claimed_in_id_order_whatever_the_appointment_lists(
        clinic: FhirContext) -> None:
    for id, hour in (("c", 10.0), ("a", 10.5), ("b", 11.0)):
        await slot(clinic, id, hour=hour)
    recording = RecordingStore(clinic.store)
    ctx = FhirContext(store=recording, registry=clinic.registry,  # type: ignore[arg-type]
                      base_url=clinic.base_url, rules=clinic.rules)

    await booking.book(ctx, appointment("c", "b", "a", minutes=90), now=NOW)

    assert recording.slot_writes == ["a", "b", "c", "a", "b", "c"]  # claims, then finalizing


async def test_concurrent_bookings_of_overlapping_slot_pairs_never_deadlock_or_split(
        clinic: FhirContext) -> None:
    for id, hour in (("a", 10.0), ("b", 10.5), ("c", 11.0)):
        await slot(clinic, id, hour=hour)
    pairs = [("b", "a"), ("a", "b"), ("c", "b"), ("b", "c")] * 5

    outcomes = await asyncio.gather(*(
        booking.book(clinic, appointment(*pair, hour=10.0 if "a" in pair else 10.5, minutes=60,
                                         actors=(f"Patient/p{n}",)), now=NOW)
        for n, pair in enumerate(pairs)), return_exceptions=True)

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, BaseException))
    assert 1 <= len(winners) <= 2
    taken = [set(s["reference"][5:] for s in orjson.loads(w.body)["slot"]) for w in winners]
    assert sum(len(t) for t in taken) == len(set().union(*taken)), "no slot in two bookings"
    for id in "abc":
        expected = "busy" if any(id in t for t in taken) else "free"
        assert await slot_status(clinic, id) == expected
    assert await appointment_count(clinic) == len(winners)


async def test_a_lapsed_hold_may_be_taken_and_a_live_one_may_not(clinic: FhirContext) -> None:
    await slot(clinic, "lapsed")
    await slot(clinic, "live", hour=11)
    await put(clinic, held(await body(clinic, "Slot", "lapsed"), "ghost", NOW - timedelta(1)))
    await put(clinic, held(await body(clinic, "Slot", "live"), "other", NOW + timedelta(hours=1)))

    await booking.book(clinic, appointment("lapsed"), now=NOW)
    with pytest.raises(Conflict):
        await booking.book(clinic, appointment("live", hour=11), now=NOW)

    assert await slot_status(clinic, "lapsed") == "busy"
    assert parse_hold(await body(clinic, "Slot", "live")).appointment_id == "other"  # type: ignore[union-attr]


async def test_recovery_frees_orphaned_holds_and_finalizes_booked_ones(
        clinic: FhirContext) -> None:
    for id, hour in (("orphan", 9), ("done", 10), ("fresh", 11), ("waiting", 12)):
        await slot(clinic, id, hour=hour)
    booked = await booking.book(clinic, appointment("done"), now=NOW)
    pending = await booking.hold(clinic, appointment("waiting", hour=12), now=NOW)
    lapsed = NOW - timedelta(minutes=1)
    await put(clinic, held(await body(clinic, "Slot", "orphan"), "never-written", lapsed))
    await put(clinic, held(await body(clinic, "Slot", "done"), booked.id, lapsed))  # crash
    await put(clinic, held(await body(clinic, "Slot", "fresh"), "in-flight", NOW + timedelta(1)))

    report = await booking_recovery.recover(clinic, now=NOW + timedelta(minutes=30))

    assert report.freed == ("orphan",) and report.finalized == ("done",)
    assert report.kept == 2  # the in-flight claim, and the pending hold (lapsed but claimable)
    assert await slot_status(clinic, "orphan") == "free"
    assert await slot_status(clinic, "done") == "busy"
    assert await slot_status(clinic, "fresh") == "busy-tentative"
    waiting = parse_hold(await body(clinic, "Slot", "waiting"))
    assert waiting is not None and waiting.appointment_id == pending.id


async def test_recovery_frees_the_hold_of_a_cancelled_appointment(clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    await put(clinic, {**appointment("s1", status="cancelled"), "id": "gone"})
    await put(clinic, held(await body(clinic, "Slot", "s1"), "gone", NOW - timedelta(1)))

    report = await booking_recovery.recover(clinic, now=NOW)

    assert report.freed == ("s1",)
    assert await slot_status(clinic, "s1") == "free"


async def test_overbooking_needs_a_reason_and_is_recorded_on_both_sides(
        clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    first = await booking.book(clinic, appointment("s1"), now=NOW)
    second = appointment("s1", actors=("Patient/james", "Practitioner/ada"))

    with pytest.raises(Conflict):
        await booking.book(clinic, second, now=NOW)
    stored = await booking.book(clinic, second, now=NOW,
                                options=BookingOptions(overbook_reason="urgent chest pain"))

    overbooked = await body(clinic, "Slot", "s1")
    assert overbooked["status"] == "busy" and overbooked["overbooked"] is True
    assert "urgent chest pain" in overbooked["comment"]
    assert {"url": OVERBOOKING_URL, "valueString": "urgent chest pain"} in \
        (await body(clinic, "Appointment", stored.id))["extension"]
    await booking.change_status(clinic, stored.id, "cancelled", now=NOW)
    assert await slot_status(clinic, "s1") == "busy", f"{first.id} still occupies it"
    await booking.change_status(clinic, first.id, "cancelled", now=NOW)
    assert await slot_status(clinic, "s1") == "free"


async def test_a_group_session_takes_one_booking_per_seat(clinic: FhirContext) -> None:
    seats = ["seat-1", "seat-2", "seat-3"]
    for seat in seats:
        await slot(clinic, seat)

    for n, seat in enumerate(seats):
        await booking.book(clinic, appointment(seat, actors=(f"Patient/p{n}", "Practitioner/ada")),
                           now=NOW)
    with pytest.raises(Conflict):
        await booking.book(clinic, appointment("seat-2", actors=("Patient/p9", "Practitioner/ada")),
                           now=NOW)
    with pytest.raises(Conflict, match="Practitioner/ada already has an appointment"):
        await booking.book(clinic, appointment(actors=("Patient/p9", "Practitioner/ada")),
                           now=NOW)

    assert [await slot_status(clinic, s) for s in seats] == ["busy"] * 3
    assert await appointment_count(clinic) == 3


async def test_an_appointment_without_slots_is_checked_against_its_actors(
        clinic: FhirContext) -> None:
    await booking.book(clinic, appointment(actors=("Patient/maria", "Location/room-1")), now=NOW)

    with pytest.raises(Conflict, match="Patient/maria"):
        await booking.book(clinic, appointment(hour=10.25, actors=("Patient/maria",)), now=NOW)
    with pytest.raises(Conflict, match="Location/room-1"):
        await booking.book(clinic, appointment(hour=9.75, actors=("Location/room-1",)), now=NOW)
    await booking.book(clinic, appointment(hour=10.5, actors=("Patient/maria",)), now=NOW)

    assert await appointment_count(clinic) == 2


async def test_cancel_frees_the_slots_at_once_and_keeps_the_reason(clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    stored = await booking.book(clinic, appointment("s1"), now=NOW)
    reason = {"text": "Patient is ill"}

    cancelled = await booking.change_status(clinic, stored.id, "cancelled", now=NOW,
                                            reason=reason, expected_version=1)

    assert orjson.loads(cancelled.body or b"")["cancelationReason"] == reason
    assert await slot_status(clinic, "s1") == "free"
    with pytest.raises(BusinessRuleViolation):
        await booking.change_status(clinic, stored.id, "booked", now=NOW)
    await booking.book(clinic, appointment("s1", actors=("Patient/james",)), now=NOW)
    assert await slot_status(clinic, "s1") == "busy"


async def test_fulfilled_keeps_the_slot_busy(clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    stored = await booking.book(clinic, appointment("s1"), now=NOW)
    for status in ("arrived", "fulfilled"):
        await booking.change_status(clinic, stored.id, status, now=NOW)

    assert await slot_status(clinic, "s1") == "busy"


async def test_reschedule_onto_a_taken_slot_keeps_the_old_booking(clinic: FhirContext) -> None:
    await slot(clinic, "old")
    await slot(clinic, "taken", hour=11, status="busy")
    await slot(clinic, "new", hour=12)
    stored = await booking.book(clinic, appointment("old"), now=NOW)

    with pytest.raises(Conflict):
        await booking.reschedule(clinic, stored.id, appointment("taken", hour=11), now=NOW)
    assert (await clinic.store.read("Appointment", stored.id)).version_id == 1  # type: ignore[union-attr]
    assert await slot_status(clinic, "old") == "busy"

    moved = await booking.reschedule(clinic, stored.id, appointment("new", hour=12), now=NOW)

    assert moved.version_id == 2
    assert [await slot_status(clinic, s) for s in ("old", "taken", "new")] == \
        ["free", "busy", "busy"]
    history = await clinic.store.history("Appointment", stored.id)
    assert [orjson.loads(v.body or b"")["start"] for v in history.versions] == \
        [format_instant(at(12)), format_instant(at(10))]


async def test_hold_then_confirm_and_a_lapsed_hold_taken_by_another(clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    await slot(clinic, "s2", hour=11)
    held_one = await booking.hold(clinic, appointment("s1"), now=NOW,
                                  hold_for=timedelta(minutes=5))
    hold = parse_hold(await body(clinic, "Slot", "s1"))
    assert hold is not None and hold.expires == NOW + timedelta(minutes=5)
    assert orjson.loads(held_one.body or b"")["status"] == "pending"

    confirmed = await booking.confirm(clinic, held_one.id, now=NOW + timedelta(minutes=1))
    assert orjson.loads(confirmed.body or b"")["status"] == "booked"
    assert await slot_status(clinic, "s1") == "busy"

    late = await booking.hold(clinic, appointment("s2", hour=11), now=NOW,
                              hold_for=timedelta(minutes=5))
    later = NOW + timedelta(minutes=10)
    await booking.book(clinic, appointment("s2", hour=11, actors=("Patient/james",)), now=later)
    with pytest.raises(Conflict):
        await booking.confirm(clinic, late.id, now=later)
    assert (await body(clinic, "Appointment", late.id))["status"] == "pending"


async def test_emergency_slots_need_the_emergency_option(clinic: FhirContext) -> None:
    reserve = [{"url": SLOT_EMERGENCY_RESERVE_URL, "valueDateTime": format_instant(at(9))}]
    await slot(clinic, "er", extension=reserve)

    with pytest.raises(Conflict, match="reserved for emergencies"):
        await booking.book(clinic, appointment("er"), now=NOW)
    await booking.book(clinic, appointment("er"), now=NOW,
                       options=BookingOptions(may_use_emergency=True))

    assert await slot_status(clinic, "er") == "busy"


async def test_a_failed_appointment_write_releases_the_claims(clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    await put(clinic, {**appointment(actors=("Patient/other",), hour=15), "id": "dup"})

    with pytest.raises(Conflict, match="already exists"):
        await booking.book(clinic, appointment("s1"), now=NOW, appointment_id="dup")

    assert await slot_status(clinic, "s1") == "free"
    assert (await clinic.store.read("Appointment", "dup")).version_id == 1  # type: ignore[union-attr]


async def test_a_slot_outside_the_appointment_is_refused(clinic: FhirContext) -> None:
    await slot(clinic, "s1", hour=14)

    with pytest.raises(BusinessRuleViolation, match="outside"):
        await booking.book(clinic, appointment("s1"), now=NOW)

    assert await slot_status(clinic, "s1") == "free"


async def test_a_stay_of_several_days_that_began_earlier_still_blocks_its_actors(
        clinic: FhirContext) -> None:
    await slot(clinic, "s1")
    await slot(clinic, "after", hour=12.5)
    # An inpatient stay from 10:00 two days before until noon: 74 hours.
    stay = appointment(actors=("Patient/james", "Practitioner/ada"), hour=-62, minutes=74 * 60)
    await put(clinic, {**stay, "id": "inpatient-stay"})

    with pytest.raises(Conflict, match=r"Practitioner/ada .*Appointment/inpatient-stay"):
        await booking.book(clinic, appointment("s1"), now=NOW)
    with pytest.raises(Conflict, match="Appointment/inpatient-stay"):
        await booking.book(clinic, appointment(hour=11.5, actors=("Patient/james",)), now=NOW)

    assert await slot_status(clinic, "s1") == "free"
    assert await appointment_count(clinic) == 1
    await booking.book(clinic, appointment("after", hour=12.5), now=NOW)  # after it ends


# --- replace (Argonaut cancelled-appt-id) ---------------------------------------------------

@pytest.fixture
async def two_doctors(clinic: FhirContext) -> FhirContext:
    """Ada's 10:00 slot booked for Maria; Bob's 10:15 slot free (it overlaps Ada's)."""
    await schedule(clinic, "sch-bob", "Practitioner/bob")
    await slot(clinic, "ada-10")
    await slot(clinic, "bob-1015", schedule_id="sch-bob", hour=10.25)
    await put(clinic, {**appointment("ada-10"), "id": "old"})  # booked, as is its slot:
    await put(clinic, {**await body(clinic, "Slot", "ada-10"), "status": "busy"})
    return clinic


def with_bob(hour: float = 10.25, slot_id: str = "bob-1015") -> dict[str, Any]:
    return appointment(slot_id, hour=hour, actors=("Patient/maria", "Practitioner/bob"))


async def test_replace_onto_an_overlapping_time_of_the_same_patient(
        two_doctors: FhirContext) -> None:
    ctx = two_doctors
    with pytest.raises(Conflict, match="Patient/maria already has an appointment"):
        await booking.book(ctx, with_bob(), now=NOW)

    new, cancelled = await booking.replace(ctx, "old", with_bob(), now=NOW)

    stored_new = await body(ctx, "Appointment", new.id)
    assert stored_new["status"] == "booked" and replaced_id(stored_new) == "old"
    assert {"url": REPLACES_URL, "valueReference": {"reference": "Appointment/old"}} in \
        stored_new["extension"]
    assert cancelled.id == "old" and cancelled.version_id == 2
    old = await body(ctx, "Appointment", "old")
    assert old["status"] == "cancelled"
    assert old["cancelationReason"] == {"text": f"Rescheduled to Appointment/{new.id}"}
    assert [await slot_status(ctx, s) for s in ("ada-10", "bob-1015")] == ["free", "busy"]
    history = await ctx.store.history("Appointment", "old")
    assert [orjson.loads(v.body or b"")["status"] for v in history.versions] == \
        ["cancelled", "booked"]


async def test_replace_onto_a_taken_slot_keeps_the_old_booking_and_writes_nothing(
        two_doctors: FhirContext) -> None:
    ctx = two_doctors
    await put(ctx, {**await body(ctx, "Slot", "bob-1015"), "status": "busy"})

    with pytest.raises(Conflict, match="Requested time slot is no longer available"):
        await booking.replace(ctx, "old", with_bob(), now=NOW)

    assert (await ctx.store.read("Appointment", "old")).version_id == 1  # type: ignore[union-attr]
    assert await appointment_count(ctx) == 1
    assert [await slot_status(ctx, s) for s in ("ada-10", "bob-1015")] == ["busy", "busy"]
    assert (await ctx.store.read("Slot", "bob-1015")).version_id == 2  # type: ignore[union-attr]


async def test_replace_of_a_final_appointment_is_refused_before_any_claim(
        two_doctors: FhirContext) -> None:
    ctx = two_doctors
    await booking.change_status(ctx, "old", "noshow", now=NOW)

    with pytest.raises(BusinessRuleViolation, match="cannot move from noshow to cancelled"):
        await booking.replace(ctx, "old", with_bob(), now=NOW)

    assert await slot_status(ctx, "bob-1015") == "free"
    assert await appointment_count(ctx) == 1


class ChangingStore(RecordingStore):
    """Moves the old appointment on (to arrived) right after the replacement is written."""

    def __init__(self, inner: Store, ctx: FhirContext) -> None:
        super().__init__(inner)
        self.ctx = ctx

    async def commit(self, writes: Sequence[VersionWrite]) -> Any:
        result = await self.inner.commit(writes)
        if any(w.resource_type == "Appointment" and w.id != "old" and w.method == "POST"
               for w in writes):
            await booking.change_status(self.ctx, "old", "arrived", now=NOW)
        return result


async def test_replace_when_the_old_changes_meanwhile_is_409_and_undoes_the_new(
        two_doctors: FhirContext) -> None:
    racing = FhirContext(store=ChangingStore(two_doctors.store, two_doctors),  # type: ignore[arg-type]
                         registry=two_doctors.registry, base_url=two_doctors.base_url,
                         rules=two_doctors.rules)

    with pytest.raises(Conflict, match="Appointment/old changed while it was being replaced"):
        await booking.replace(racing, "old", with_bob(), now=NOW, appointment_id="new")

    assert (await body(two_doctors, "Appointment", "old"))["status"] == "arrived"
    assert (await two_doctors.store.read("Appointment", "new")).deleted  # type: ignore[union-attr]
    assert [await slot_status(two_doctors, s) for s in ("ada-10", "bob-1015")] == \
        ["busy", "free"]


class YieldingStore(RecordingStore):
    """Lets the other task run before every read and write, so two use cases interleave."""

    async def read(self, resource_type: str, id: str) -> Any:
        await asyncio.sleep(0)
        return await self.inner.read(resource_type, id)

    async def commit(self, writes: Sequence[VersionWrite]) -> Any:
        await asyncio.sleep(0)
        return await self.inner.commit(writes)


async def test_two_replacements_of_one_appointment_leave_one_standing(
        two_doctors: FhirContext) -> None:
    ctx = two_doctors
    await slot(ctx, "bob-11", schedule_id="sch-bob", hour=11)
    yielding = FhirContext(store=YieldingStore(ctx.store),  # type: ignore[arg-type]
                           registry=ctx.registry, base_url=ctx.base_url, rules=ctx.rules)

    outcomes = await asyncio.gather(
        booking.replace(yielding, "old", with_bob(), now=NOW, appointment_id="first"),
        booking.replace(yielding, "old", with_bob(11, "bob-11"), now=NOW,
                        appointment_id="second"),
        return_exceptions=True)

    assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    [(winner, _)] = [o for o in outcomes if not isinstance(o, BaseException)]
    old = await body(ctx, "Appointment", "old")
    assert old["cancelationReason"] == {"text": f"Rescheduled to Appointment/{winner.id}"}
    standing = [id for id in ("first", "second")
                if not (await ctx.store.read("Appointment", id)).deleted]  # type: ignore[union-attr]
    assert standing == [winner.id]
    assert sorted([await slot_status(ctx, s) for s in ("bob-1015", "bob-11")]) == ["busy", "free"]


class CrashingStore(RecordingStore):
    """Fails every call once the replacement Appointment is written, as a dead process would."""

    dead = False

    async def commit(self, writes: Sequence[VersionWrite]) -> Any:
        if self.dead:
            raise ConnectionError("the server died")
        result = await self.inner.commit(writes)
        self.dead = any(w.resource_type == "Appointment" and w.method == "POST" for w in writes)
        return result

    async def read(self, resource_type: str, id: str) -> Any:
        if self.dead:
            raise ConnectionError("the server died")
        return await self.inner.read(resource_type, id)


async def test_recovery_finishes_a_replacement_that_crashed_before_cancelling_the_old(
        two_doctors: FhirContext) -> None:
    ctx = two_doctors
    crashing = FhirContext(store=CrashingStore(ctx.store),  # type: ignore[arg-type]
                           registry=ctx.registry, base_url=ctx.base_url, rules=ctx.rules)
    with pytest.raises(ConnectionError):
        await booking.replace(crashing, "old", with_bob(), now=NOW, appointment_id="new")
    assert (await body(ctx, "Appointment", "old"))["status"] == "booked"
    assert await slot_status(ctx, "bob-1015") == "busy-tentative"

    early = await booking_recovery.recover(ctx, now=NOW)
    report = await booking_recovery.recover(ctx, now=NOW + booking.CLAIM_TTL)

    assert early.replaced == () and early.kept == 1
    assert report.replaced == ("old",) and report.finalized == ("bob-1015",)
    old = await body(ctx, "Appointment", "old")
    assert old["status"] == "cancelled"
    assert old["cancelationReason"] == {"text": "Rescheduled to Appointment/new"}
    assert (await body(ctx, "Appointment", "new"))["status"] == "booked"
    assert [await slot_status(ctx, s) for s in ("ada-10", "bob-1015")] == ["free", "busy"]
    again = await booking_recovery.recover(ctx, now=NOW + booking.CLAIM_TTL)
    assert again == booking_recovery.RecoveryReport()


async def test_only_replace_may_link_an_appointment_to_the_one_it_replaces(
        two_doctors: FhirContext) -> None:
    forged = {**with_bob(), "extension": [
        {"url": REPLACES_URL, "valueReference": {"reference": "Appointment/old"}}]}

    with pytest.raises(BusinessRuleViolation, match="replaces"):
        await booking.book(two_doctors, forged, now=NOW)

    assert await slot_status(two_doctors, "bob-1015") == "free"
    new, _ = await booking.replace(two_doctors, "old", with_bob(), now=NOW)
    kept = await booking.change_status(two_doctors, new.id, "arrived", now=NOW)
    assert replaced_id(orjson.loads(kept.body or b"")) == "old"
