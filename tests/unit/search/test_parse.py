"""Parsing FHIR search parameters into exact clauses, chains, includes and result controls."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_server.fhir.errors import InvalidRequest, UnknownSearchParameter
from fhir_server.fhir.search.dates import MS_PER_DAY, parse_date_range
from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    ReferenceMatch,
    SortKey,
    StringMatch,
    TokenMatch,
)
from fhir_server.fhir.search.parameters import SearchParameterRegistry
from fhir_server.fhir.search.parse import (
    ChainedSearch,
    IncludeSpec,
    SearchRequest,
    date_predicates,
    parse_query_string,
    parse_search,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
BASE = "https://scheduler.example/fhir"
DAY_LOW, DAY_HIGH = parse_date_range("2024-06-10")


def search(registry: SearchParameterRegistry, resource_type: str, qs: str, **kwargs: object) -> SearchRequest:
    """Parse a raw query string the way the API layer will."""
    return parse_search(resource_type, parse_query_string(qs), registry, now=NOW, base_url=BASE, **kwargs)  # type: ignore[arg-type]


def where(registry: SearchParameterRegistry, resource_type: str, qs: str) -> tuple[Clause, ...]:
    return search(registry, resource_type, qs).query.where


# --- tokens -------------------------------------------------------------------------------


def test_token_forms(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Appointment", "status=booked&identifier=urn:oid:1|A-1"
                 "&service-type=|57&specialty=http://snomed.info/sct|") == (
        Clause((TokenMatch("status", None, "booked"),)),
        Clause((TokenMatch("identifier", "urn:oid:1", "A-1"),)),
        Clause((TokenMatch("service-type", "", "57"),)),
        Clause((TokenMatch("specialty", "http://snomed.info/sct", None),)))


def test_comma_is_or_and_repetition_is_and(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Slot", "status=free,busy-tentative&status=free") == (
        Clause((TokenMatch("status", None, "free"), TokenMatch("status", None, "busy-tentative"))),
        Clause((TokenMatch("status", None, "free"),)))


def test_escaped_comma_and_pipe_are_literal(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Appointment", r"identifier=urn:x|A\,1\|2,B") == (
        Clause((TokenMatch("identifier", "urn:x", "A,1|2"), TokenMatch("identifier", None, "B"))),)


def test_not_modifier_negates_the_clause(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Appointment", "status:not=cancelled,noshow") == (
        Clause((TokenMatch("status", None, "cancelled"), TokenMatch("status", None, "noshow")), negate=True),)


def test_boolean_is_a_token_and_uri_matches_code_only(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Schedule", "active=true&_profile=http://p/x") == (
        Clause((TokenMatch("active", None, "true"),)), Clause((TokenMatch("_profile", None, "http://p/x"),)))


def test_missing_modifier(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Patient", "gender:missing=true&birthdate:missing=false&family:missing=true") == (
        Clause((TokenMatch("gender", None, None),), negate=True),
        Clause((DateMatch("birthdate"),)),
        Clause((StringMatch("family", "", "startswith"),), negate=True))
    with pytest.raises(InvalidRequest):
        where(registry, "Patient", "gender:missing=maybe")


# --- references ---------------------------------------------------------------------------


def test_reference_forms(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Slot", "schedule=Schedule/s1&schedule=s2"
                 f"&schedule={BASE}/Schedule/s3&schedule=https://other.example/fhir/Schedule/s4") == (
        Clause((ReferenceMatch("schedule", "Schedule", "s1"),)),
        Clause((ReferenceMatch("schedule", "Schedule", "s2"),)),
        Clause((ReferenceMatch("schedule", "Schedule", "s3"),)),
        Clause((ReferenceMatch("schedule", None, None, url="https://other.example/fhir/Schedule/s4"),)))


def test_plain_id_on_multi_target_reference_is_untyped_unless_modified(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Appointment", "actor=d1&actor:Practitioner=d2&actor=Location/r1,Device/x") == (
        Clause((ReferenceMatch("actor", None, "d1"),)),
        Clause((ReferenceMatch("actor", "Practitioner", "d2"),)),
        Clause((ReferenceMatch("actor", "Location", "r1"), ReferenceMatch("actor", "Device", "x"))))


def test_reference_type_modifier_must_agree_and_be_a_target(registry: SearchParameterRegistry) -> None:
    with pytest.raises(InvalidRequest):
        where(registry, "Appointment", "actor:Practitioner=Location/r1")
    with pytest.raises(UnknownSearchParameter):
        where(registry, "Appointment", "actor:Slot=1")
    with pytest.raises(InvalidRequest):
        where(registry, "Appointment", "actor=Practitioner/")


# --- strings and ids ----------------------------------------------------------------------


def test_string_modes(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Patient", "name=Dupré,ÁNA&family:exact=Dupré&given:contains=ari") == (
        Clause((StringMatch("name", "dupre", "startswith"), StringMatch("name", "ana", "startswith"))),
        Clause((StringMatch("family", "Dupré", "exact"),)),
        Clause((StringMatch("given", "ari", "contains"),)))


def test_ids_and_last_updated(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Slot", "_id=a,b&_id:not=c&_lastUpdated=gt2024-06-10") == (
        Clause((IdMatch(("a", "b")),)), Clause((IdMatch(("c",)),), negate=True),
        Clause((DateMatch("_lastUpdated", high_gt=DAY_HIGH),)))


# --- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", (DateMatch("start", low_ge=DAY_LOW, high_le=DAY_HIGH),)),
        ("eq", (DateMatch("start", low_ge=DAY_LOW, high_le=DAY_HIGH),)),
        ("gt", (DateMatch("start", high_gt=DAY_HIGH),)),
        ("lt", (DateMatch("start", low_lt=DAY_LOW),)),
        ("ge", (DateMatch("start", high_gt=DAY_LOW),)),
        ("le", (DateMatch("start", low_lt=DAY_HIGH),)),
        ("sa", (DateMatch("start", low_ge=DAY_HIGH),)),
        ("eb", (DateMatch("start", high_le=DAY_LOW),)),
        # 2024-06-10 is 8.5 days after NOW's day start, so 10% is under a day: δ = one day.
        ("ap", (DateMatch("start", low_lt=DAY_HIGH + MS_PER_DAY, high_gt=DAY_LOW - MS_PER_DAY),)),
    ],
)
def test_date_prefixes_map_to_exact_bounds(registry: SearchParameterRegistry, prefix: str,
                                           expected: tuple[DateMatch, ...]) -> None:
    assert where(registry, "Slot", f"start={prefix}2024-06-10") == (Clause(expected),)


def test_ne_alone_is_negated_eq_and_inside_a_list_is_lt_or_gt(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Slot", "start=ne2024-06-10") == (
        Clause((DateMatch("start", low_ge=DAY_LOW, high_le=DAY_HIGH),), negate=True),)
    assert where(registry, "Slot", "start=ne2024-06-10,eq2024-06-10") == (Clause((
        DateMatch("start", low_lt=DAY_LOW), DateMatch("start", high_gt=DAY_HIGH),
        DateMatch("start", low_ge=DAY_LOW, high_le=DAY_HIGH))),)


def test_ap_widens_by_ten_percent_of_the_distance_to_now() -> None:
    low, high = parse_date_range("2014-06-01")  # ten years before NOW
    now_ms = int(NOW.timestamp() * 1000)
    delta = (now_ms - high) // 10
    assert delta > 300 * MS_PER_DAY
    assert date_predicates("d", "ap", low, high, now_ms) == (
        DateMatch("d", low_lt=high + delta, high_gt=low - delta),)


def test_slot_overlap_window_with_custom_end(registry: SearchParameterRegistry) -> None:
    window_start = parse_date_range("2024-06-10T08:00:00Z")
    window_end = parse_date_range("2024-06-10T12:00:00Z")
    assert where(registry, "Slot", "start=lt2024-06-10T12:00:00Z&end=gt2024-06-10T08:00:00Z") == (
        Clause((DateMatch("start", low_lt=window_end[0]),)),
        Clause((DateMatch("end", high_gt=window_start[1]),)))


def test_unencoded_plus_in_time_zone_is_accepted(registry: SearchParameterRegistry) -> None:
    low = parse_date_range("2024-06-10T08:00:00Z")[0]
    assert where(registry, "Slot", "start=ge2024-06-10T10:00:00+02:00") == (
        Clause((DateMatch("start", high_gt=low),)),)


@pytest.mark.parametrize("qs", ["start=2024-13-01", "start=xx2024", "start=gt", "start=2024-06-10T08"])
def test_malformed_dates_are_invalid(registry: SearchParameterRegistry, qs: str) -> None:
    with pytest.raises(InvalidRequest):
        where(registry, "Slot", qs)


def _matches(match: DateMatch, low: int, high: int) -> bool:
    """How an adapter evaluates a DateMatch on an entry [low, high)."""
    return ((match.low_ge is None or low >= match.low_ge) and (match.low_lt is None or low < match.low_lt)
            and (match.high_gt is None or high > match.high_gt) and (match.high_le is None or high <= match.high_le))


@given(st.integers(-10**6, 10**6), st.integers(1, 10**4), st.integers(-10**6, 10**6), st.integers(1, 10**4))
def test_prefix_semantics_hold_for_any_ranges(ql: int, qwidth: int, low: int, width: int) -> None:
    qh, high = ql + qwidth, low + width

    def hit(prefix: str) -> bool:
        return any(_matches(m, low, high) for m in date_predicates("d", prefix, ql, qh, 0))

    assert hit("eq") == (ql <= low and high <= qh)
    assert hit("ne") == (not hit("eq"))
    assert hit("gt") == (high > qh)
    assert hit("lt") == (low < ql)
    # ge/le: the value reaches into the search range or beyond it (a superset of gt/lt or eq).
    assert hit("ge") == (high > ql)
    assert hit("le") == (low < qh)
    assert hit("ge") >= (hit("gt") or hit("eq"))
    assert hit("le") >= (hit("lt") or hit("eq"))
    assert hit("sa") == (low >= qh)
    assert hit("eb") == (high <= ql)
    if hit("eq"):
        assert hit("ap")


# --- chains and includes ------------------------------------------------------------------


def test_chains_are_returned_unresolved(registry: SearchParameterRegistry) -> None:
    request = search(registry, "Slot", "schedule.actor=Practitioner/1&status=free")
    assert request.chains == (ChainedSearch("schedule", ("Schedule",), (("actor", "Practitioner/1"),)),)
    assert request.query.where == (Clause((TokenMatch("status", None, "free"),)),)
    typed = search(registry, "Appointment", "actor:Patient.name=ana&patient.birthdate=ge1980")
    assert typed.chains == (ChainedSearch("actor", ("Patient",), (("name", "ana"),)),
                            ChainedSearch("patient", ("Patient",), (("birthdate", "ge1980"),)))


def test_chain_targets_keep_only_served_types_having_the_param(registry: SearchParameterRegistry) -> None:
    request = search(registry, "Appointment", "actor.name=smith")
    # RelatedPerson is a target but not served; Device and PractitionerRole have no `name`.
    assert request.chains == (ChainedSearch(
        "actor", ("Practitioner", "Patient", "HealthcareService", "Location"), (("name", "smith"),)),)


@pytest.mark.parametrize("qs", ["status.code=x", "schedule.actor.name=x", "schedule.nope=x", "actor:Slot.status=x"])
def test_bad_chains_are_unknown(registry: SearchParameterRegistry, qs: str) -> None:
    with pytest.raises(UnknownSearchParameter):
        search(registry, "Appointment" if "actor" in qs or "status" in qs else "Slot", qs)


def test_includes_and_revincludes(registry: SearchParameterRegistry) -> None:
    request = search(registry, "Appointment", "_include=Appointment:patient&_include=Appointment:actor:Practitioner"
                     "&_include:iterate=PractitionerRole:location&_include=Appointment:*"
                     "&_revinclude=AppointmentResponse:appointment")
    assert request.includes == (
        IncludeSpec("Appointment", "patient", None, False),
        IncludeSpec("Appointment", "actor", "Practitioner", False),
        IncludeSpec("PractitionerRole", "location", None, True),
        IncludeSpec("Appointment", "*", None, False))
    assert request.revincludes == (IncludeSpec("AppointmentResponse", "appointment", None, False),)
    assert search(registry, "Schedule", "_revinclude=Slot:schedule").revincludes == (
        IncludeSpec("Slot", "schedule", None, False),)


@pytest.mark.parametrize("qs", ["_include=Slot:schedule", "_include=Appointment", "_include=::"])
def test_malformed_includes_are_invalid(registry: SearchParameterRegistry, qs: str) -> None:
    with pytest.raises(InvalidRequest):
        search(registry, "Appointment", qs)


@pytest.mark.parametrize("qs", ["_include=Appointment:status", "_include=Appointment:actor:Slot",
                                "_revinclude=Slot:schedule", "_include:bogus=Appointment:patient"])
def test_unknown_includes_are_unknown_parameters(registry: SearchParameterRegistry, qs: str) -> None:
    with pytest.raises(UnknownSearchParameter):
        search(registry, "Appointment", qs)


# --- result controls ----------------------------------------------------------------------


def test_sort_keys(registry: SearchParameterRegistry) -> None:
    assert search(registry, "Slot", "_sort=start,-_lastUpdated,_id,-schedule,status").query.sort == (
        SortKey("start", "date"), SortKey("_lastUpdated", "lastUpdated", True), SortKey("_id", "id"),
        SortKey("schedule", "reference", True), SortKey("status", "token"))
    assert search(registry, "Patient", "_sort=family").query.sort == (SortKey("family", "string"),)
    assert search(registry, "Slot", "").query.sort == ()


def test_count_offset_defaults_and_clamping(registry: SearchParameterRegistry) -> None:
    default = search(registry, "Slot", "")
    assert (default.count, default.offset, default.query.limit, default.query.offset) == (50, 0, 50, 0)
    clamped = search(registry, "Slot", "_count=5000&_offset=100")
    assert (clamped.count, clamped.query.limit, clamped.query.offset) == (1000, 1000, 100)
    assert search(registry, "Slot", "_count=7", max_count=5).query.limit == 5
    assert search(registry, "Slot", "_count=0").query.limit == 0
    for bad in ("_count=abc", "_count=-1", "_offset=1.5"):
        with pytest.raises(InvalidRequest):
            search(registry, "Slot", bad)


def test_summary_total_elements(registry: SearchParameterRegistry) -> None:
    request = search(registry, "Slot", "_summary=count&_total=accurate&_format=json&_pretty=true")
    assert (request.summary, request.total, request.query.limit, request.query.with_total) == (
        "count", "accurate", 0, True)
    assert search(registry, "Slot", "_total=none").query.with_total is False
    assert search(registry, "Slot", "_elements=status, start").elements == ("status", "start")
    for bad in ("_summary=maybe", "_total=all", "_elements=a.b"):
        with pytest.raises(InvalidRequest):
            search(registry, "Slot", bad)


def test_empty_values_are_ignored(registry: SearchParameterRegistry) -> None:
    assert where(registry, "Slot", "status=&start=") == ()
    assert where(registry, "Slot", "status=free,") == (Clause((TokenMatch("status", None, "free"),)),)


# --- unknown parameters -------------------------------------------------------------------


def test_unknown_parameter_strict_names_it(registry: SearchParameterRegistry) -> None:
    with pytest.raises(UnknownSearchParameter) as caught:
        search(registry, "Slot", "colour=red")
    assert "colour" in str(caught.value)
    assert caught.value.issues[0].expression == ("colour",)
    for qs in ("status:text=free", "start:exact=2024", "name:not=x", "_has:Appointment:slot:status=booked"):
        with pytest.raises(UnknownSearchParameter):
            search(registry, "Patient" if "name" in qs else "Slot", qs)


def test_lenient_drops_unknown_but_still_rejects_bad_values(registry: SearchParameterRegistry) -> None:
    request = search(registry, "Slot", "colour=red&status:text=free&status=free&_sort=nope&_include=Slot:nope",
                     lenient=True)
    assert request.ignored == ("colour", "status:text", "_sort=nope", "_include=Slot:nope")
    assert request.query.where == (Clause((TokenMatch("status", None, "free"),)),)
    with pytest.raises(InvalidRequest):
        search(registry, "Slot", "colour=red&start=notadate", lenient=True)


def test_parse_query_string_keeps_blanks_and_order() -> None:
    assert parse_query_string("a=1&b=&a=2&c=x%2Cy") == [("a", "1"), ("b", ""), ("a", "2"), ("c", "x,y")]


@pytest.mark.parametrize("mode", ["true", "text"])
def test_summary_modes_needing_element_summary_flags_are_refused(
        registry: SearchParameterRegistry, mode: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_search("Patient", [("_summary", mode)], registry, now=NOW)
