"""The patients a resource refers to, as kept with each stored version for the audit trail."""

from __future__ import annotations

from fhir_server.fhir.references import patient_references, referenced_patients


def test_patient_references_skip_contained_resources_and_keep_versions_out() -> None:
    resource = {"subject": {"reference": "http://x/fhir/Patient/p1/_history/2"},
                "contained": [{"subject": {"reference": "Patient/hidden"}}],
                "about": [{"reference": "Patient/p3"}, {"reference": "Group/g"}]}

    assert list(patient_references(resource)) == ["Patient/p1", "Patient/p3"]


def test_the_kept_patients_are_distinct_in_order_and_only_valid_ids() -> None:
    resource = {"participant": [{"actor": {"reference": "Patient/p2"}},
                                {"actor": {"reference": "Patient/p1"}},
                                {"actor": {"reference": "Patient/p2/_history/3"}},
                                {"actor": {"reference": "Patient/not an id"}},
                                {"actor": {"reference": "Patient/" + "x" * 65}}]}

    assert referenced_patients(resource) == ("Patient/p2", "Patient/p1")
    assert referenced_patients({"status": "free"}) == ()
