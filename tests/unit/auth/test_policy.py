"""The access policy: a role × interaction matrix, operations, scopes narrowing roles, limits."""

import pytest

from fhir_server.auth.compartment import PatientCompartment, PractitionerCompartment
from fhir_server.auth.policy import Access, AccessDenied, decide
from fhir_server.auth.roles import ROLES, InvalidRoleClaim, Role, role_from_claims
from fhir_server.auth.scopes import parse_scopes

INTERACTIONS = {"read": "r", "search": "s", "create": "c", "update": "u", "delete": "d"}

# The spec of issue 6 written out independently of roles.py: letters each role may use when
# its scopes grant everything.
MATRIX: dict[Role, dict[str, str]] = {
    Role.ADMINISTRATOR: {"Appointment": "cruds", "Slot": "cruds", "Schedule": "cruds",
                         "Patient": "cruds", "AuditEvent": "rs"},
    Role.DOCTOR: {"Appointment": "crus", "Slot": "cruds", "Schedule": "crus",
                  "Patient": "rs", "AuditEvent": ""},
    Role.STAFF: {"Appointment": "crus", "Slot": "rs", "Schedule": "rs",
                 "Patient": "crus", "AuditEvent": ""},
    Role.PATIENT: {"Appointment": "crus", "Slot": "rs", "Schedule": "rs",
                   "Patient": "rs", "AuditEvent": ""},
}
OPERATIONS: dict[Role, set[str]] = {
    Role.ADMINISTRATOR: {"$find-slots", "$find", "$hold", "$book", "$reschedule",
                         "$generate-slots"},
    Role.DOCTOR: {"$find-slots", "$find", "$hold", "$book", "$reschedule", "$generate-slots"},
    Role.STAFF: {"$find-slots", "$find", "$hold", "$book", "$reschedule"},
    Role.PATIENT: {"$find-slots", "$find", "$hold", "$book", "$reschedule"},
}
OPERATION_TYPES = {"$find-slots": "Slot", "$find": "Appointment", "$hold": "Appointment",
                   "$book": "Appointment", "$reschedule": "Appointment",
                   "$generate-slots": "Schedule"}


def full_access(role: Role) -> Access:
    """A token of `role` whose scopes grant everything, so only the role limits it."""
    if role is Role.PATIENT:
        return Access(role, parse_scopes("launch/patient patient/*.cruds"),
                      fhir_user="Patient/p1", patient_id="p1", client_id="patient-app")
    return Access(role, parse_scopes("user/*.cruds"), fhir_user="Practitioner/u1",
                  client_id="ehr")


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("resource_type", ["Appointment", "Slot", "Schedule", "Patient",
                                           "AuditEvent"])
@pytest.mark.parametrize("interaction", list(INTERACTIONS))
def test_role_interaction_matrix(role: Role, resource_type: str, interaction: str) -> None:
    decision = decide(full_access(role), interaction=interaction, resource_type=resource_type)
    expected = INTERACTIONS[interaction] in MATRIX[role][resource_type]
    assert decision.allowed is expected, decision.reason
    if not expected:
        assert decision.reason and resource_type in decision.reason


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("operation", list(OPERATION_TYPES))
def test_role_operation_matrix(role: Role, operation: str) -> None:
    decision = decide(full_access(role), interaction="operation",
                      resource_type=OPERATION_TYPES[operation], operation=operation)
    assert decision.allowed is (operation in OPERATIONS[role]), decision.reason


def test_capability_flags_follow_the_issue() -> None:
    admin, doctor, staff, patient = (ROLES[r] for r in (Role.ADMINISTRATOR, Role.DOCTOR,
                                                        Role.STAFF, Role.PATIENT))
    assert [r.may_overbook for r in (admin, doctor, staff, patient)] == [True, False, True, False]
    assert [r.may_read_audit for r in (admin, doctor, staff, patient)] == [True, False, False,
                                                                          False]
    assert not patient.may_book_emergency and staff.may_book_emergency
    assert admin.may_manage_any_availability and not doctor.may_manage_any_availability
    assert doctor.manages_own_availability_only and not staff.manages_own_availability_only
    for definition in ROLES.values():  # the audit flag and the AuditEvent ceiling agree
        assert definition.may_read_audit == definition.permits("AuditEvent", "r")


def test_scopes_narrow_an_administrator() -> None:
    admin = Access(Role.ADMINISTRATOR, parse_scopes("user/Slot.rs"))
    assert decide(admin, interaction="search", resource_type="Slot").allowed
    refused = decide(admin, interaction="create", resource_type="Appointment")
    assert not refused.allowed and "user/Appointment.c" in refused.reason
    # $find-slots needs Schedule search too
    assert not decide(admin, interaction="operation", resource_type="Slot",
                      operation="$find-slots").allowed
    with pytest.raises(AccessDenied, match="create Appointment"):
        refused.require()


def test_scopes_never_lift_a_role() -> None:
    staff = Access(Role.STAFF, parse_scopes("user/*.*"), fhir_user="Practitioner/s1")
    assert not decide(staff, interaction="create", resource_type="Slot").allowed
    assert not decide(staff, interaction="read", resource_type="AuditEvent").allowed


def test_v1_read_scope_cannot_book() -> None:
    doctor = Access(Role.DOCTOR, parse_scopes("user/Appointment.read user/Slot.read "
                                              "user/Schedule.read"), fhir_user="Practitioner/d1")
    assert decide(doctor, interaction="operation", resource_type="Slot",
                  operation="find-slots").allowed
    for operation in ("$hold", "$book", "$reschedule"):
        assert not decide(doctor, interaction="operation", resource_type="Appointment",
                          operation=operation).allowed


def test_hold_and_book_accept_create_or_update_reschedule_needs_update() -> None:
    creator = Access(Role.STAFF, parse_scopes("user/Appointment.c"))
    assert decide(creator, interaction="operation", resource_type="Appointment",
                  operation="$book").allowed
    updater = Access(Role.STAFF, parse_scopes("user/Appointment.u"))
    assert decide(updater, interaction="operation", resource_type="Appointment",
                  operation="$hold").allowed
    assert not decide(creator, interaction="operation", resource_type="Appointment",
                      operation="$reschedule").allowed


def test_generate_slots_needs_slot_writes_and_schedule_update() -> None:
    slot_create_only = Access(Role.ADMINISTRATOR, parse_scopes("user/Slot.c user/Schedule.u"))
    assert not decide(slot_create_only, interaction="operation", resource_type="Schedule",
                      operation="$generate-slots").allowed
    enough = Access(Role.ADMINISTRATOR, parse_scopes("user/Slot.cud user/Schedule.u"))
    decision = decide(enough, interaction="operation", resource_type="Schedule",
                      operation="$generate-slots")
    assert decision.allowed and decision.own_schedule_of is None  # admins manage any


def test_patient_token_is_confined_to_its_compartment() -> None:
    patient = full_access(Role.PATIENT)
    decision = decide(patient, interaction="search", resource_type="Appointment")
    assert decision.compartment == PatientCompartment("p1")
    booking = decide(patient, interaction="operation", resource_type="Appointment",
                     operation="$book")
    assert booking.allowed and booking.compartment == PatientCompartment("p1")
    # a patient's user/ scopes are still confined; system/ scopes give a patient nothing
    via_user = Access(Role.PATIENT, parse_scopes("user/Appointment.rs"), fhir_user="Patient/p2")
    assert decide(via_user, interaction="read",
                  resource_type="Appointment").compartment == PatientCompartment("p2")
    via_system = Access(Role.PATIENT, parse_scopes("system/*.cruds"), fhir_user="Patient/p2")
    assert not decide(via_system, interaction="read", resource_type="Appointment").allowed


def test_patient_reads_directory_data() -> None:
    patient = full_access(Role.PATIENT)
    for resource_type in ("Slot", "Schedule", "Practitioner", "Location"):
        decision = decide(patient, interaction="search", resource_type=resource_type)
        assert decision.allowed
        assert decision.compartment is not None
        assert decision.compartment.search_clause(resource_type) is None


def test_patient_without_patient_or_with_someone_elses_context_is_refused() -> None:
    anonymous = Access(Role.PATIENT, parse_scopes("patient/Appointment.rs"))
    assert not decide(anonymous, interaction="search", resource_type="Appointment").allowed
    other = Access(Role.PATIENT, parse_scopes("patient/Appointment.rs"),
                   fhir_user="Patient/p1", patient_id="p2")
    refused = decide(other, interaction="search", resource_type="Appointment")
    assert not refused.allowed and "Patient/p2" in refused.reason


def test_clinician_patient_scopes_use_the_launch_patient() -> None:
    scopes = parse_scopes("launch patient/Appointment.rs")
    launched = Access(Role.STAFF, scopes, fhir_user="Practitioner/s1", patient_id="p9")
    decision = decide(launched, interaction="search", resource_type="Appointment")
    assert decision.allowed and decision.compartment == PatientCompartment("p9")
    unlaunched = Access(Role.STAFF, scopes, fhir_user="Practitioner/s1")
    assert not decide(unlaunched, interaction="search", resource_type="Appointment").allowed
    # a user/ scope for the same type wins: the clinician is not confined
    wide = Access(Role.STAFF, parse_scopes("patient/Appointment.rs user/Appointment.rs"),
                  patient_id="p9")
    assert decide(wide, interaction="search", resource_type="Appointment").compartment is None


def test_doctor_limits_own_availability_and_seen_patients() -> None:
    doctor = full_access(Role.DOCTOR)
    slot_write = decide(doctor, interaction="create", resource_type="Slot")
    assert slot_write.own_schedule_of == "Practitioner/u1"
    assert decide(doctor, interaction="search", resource_type="Slot").own_schedule_of is None
    assert decide(doctor, interaction="read", resource_type="Patient").seen_by == "Practitioner/u1"
    nameless = Access(Role.DOCTOR, parse_scopes("user/*.cruds"))
    assert not decide(nameless, interaction="update", resource_type="Schedule").allowed


@pytest.mark.parametrize("resource_type", ["Appointment", "AppointmentResponse",
                                           "Communication", "CommunicationRequest"])
def test_doctor_is_confined_to_what_they_take_part_in(resource_type: str) -> None:
    for interaction in ("read", "search", "create", "update"):
        decision = decide(full_access(Role.DOCTOR), interaction=interaction,
                          resource_type=resource_type)
        if decision.allowed:
            assert decision.practitioner_compartment == PractitionerCompartment("u1")
    assert decide(full_access(Role.STAFF), interaction="search",
                  resource_type=resource_type).practitioner_compartment is None


def test_doctor_booking_operations_carry_the_practitioner_compartment() -> None:
    doctor = full_access(Role.DOCTOR)
    booking = decide(doctor, interaction="operation", resource_type="Appointment",
                     operation="$book")
    assert booking.practitioner_compartment == PractitionerCompartment("u1")
    finding = decide(doctor, interaction="operation", resource_type="Slot",
                     operation="$find-slots")
    assert finding.allowed and finding.practitioner_compartment is None


def test_a_doctor_without_a_practitioner_fhir_user_reads_no_patient_data() -> None:
    as_role = Access(Role.DOCTOR, parse_scopes("user/*.cruds"), fhir_user="PractitionerRole/r1")
    for resource_type in ("Appointment", "Patient"):
        refused = decide(as_role, interaction="read", resource_type=resource_type)
        assert not refused.allowed and "Practitioner fhirUser" in refused.reason
    assert decide(as_role, interaction="search", resource_type="Slot").allowed


def test_scope_constraints_reach_the_decision() -> None:
    access = Access(Role.PATIENT, parse_scopes("patient/Appointment.rs?status=booked"),
                    patient_id="p1")
    decision = decide(access, interaction="search", resource_type="Appointment")
    assert decision.constraints_on("Appointment") == ((("status", "booked"),),)
    assert decision.constraints_on("Slot") == ()


@pytest.mark.parametrize(("interaction", "operation"), [
    ("operation", "$everything"), ("operation", None), ("purge", None)])
def test_unknown_requests_fail_closed(interaction: str, operation: str | None) -> None:
    assert not decide(full_access(Role.ADMINISTRATOR), interaction=interaction,
                      resource_type="Appointment", operation=operation).allowed


def test_role_from_claims() -> None:
    assert role_from_claims({"fhir_scheduler_role": "Staff", "fhirUser": "Practitioner/1"}) \
        is Role.STAFF
    assert role_from_claims({"fhirUser": "https://ehr.example/fhir/Patient/7"}) is Role.PATIENT
    assert role_from_claims({"fhirUser": "Practitioner/1"}) is Role.DOCTOR
    assert role_from_claims({"fhirUser": "RelatedPerson/1"}) is None
    assert role_from_claims({}) is None
    with pytest.raises(InvalidRoleClaim, match="superuser"):
        role_from_claims({"fhir_scheduler_role": "superuser"})


def test_access_from_claims_and_no_role_is_refused() -> None:
    access = Access.from_claims({"scope": "openid fhirUser patient/Appointment.rs",
                                 "fhirUser": "Patient/p1", "patient": "p1", "azp": "app"})
    assert (access.role, access.patient_id, access.client_id) == (Role.PATIENT, "p1", "app")
    assert access.capabilities is ROLES[Role.PATIENT]
    backend = Access.from_claims({"scp": ["system/*.rs"], "client_id": "etl"})
    refused = decide(backend, interaction="read", resource_type="Slot")
    assert not refused.allowed and "role" in refused.reason
