"""The patient compartment from the packaged R4 CompartmentDefinition, as query clauses and checks.

A patient-context token may only touch resources in its patient's compartment. Which search
parameters put a resource there comes from the official definition (Appointment: `actor`;
Communication: `subject`, `sender`, `recipient`; ...), so the server and the spec cannot
drift. The Patient resource itself is in its own compartment by id (and through `link`).

Directory data is not confined even when the definition lists it: R4 puts Schedule in the
compartment through `actor`, but issue 6 says Slot and Schedule are directory data a patient
may read (a patient must see a clinic's schedules to book). `confines` and `admits` apply
that exemption; `params_for` and `contains` stay faithful to the definition.

A doctor's clinical data is bounded by the R4 Practitioner compartment instead
(`PractitionerCompartment`): the appointments, responses and messages they take part in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

from fhir_server.fhir.search.extract import extract_index
from fhir_server.fhir.search.model import (
    Clause,
    IdMatch,
    IndexEntry,
    Predicate,
    ReferenceEntry,
    ReferenceMatch,
)
from fhir_server.fhir.search.parameters import SearchParameterRegistry, load_registry

PATIENT: Final = "Patient"
PRACTITIONER: Final = "Practitioner"
UNCONFINED_DIRECTORY_TYPES: Final[frozenset[str]] = frozenset({"Slot", "Schedule"})

Resource = Mapping[str, Any]

# The scheduling types of R4's Practitioner CompartmentDefinition (not packaged: four lines).
# Schedule is in it too (`actor`), but schedules are directory data everyone may read.
PRACTITIONER_COMPARTMENT_PARAMS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "Appointment": ("actor",),
    "AppointmentResponse": ("actor",),
    "Communication": ("sender", "recipient"),
    "CommunicationRequest": ("sender", "recipient", "requester"),
})


@functools.cache
def compartment_params() -> Mapping[str, tuple[str, ...]]:
    """Resource type → the parameters that place it in the patient compartment (R4)."""
    source = resources.files("fhir_server.fhir").joinpath("definitions/compartment-patient.json")
    definition = json.loads(source.read_text(encoding="utf-8"))
    if (definition.get("resourceType"), definition.get("code")) != ("CompartmentDefinition",
                                                                    PATIENT):
        raise ValueError("compartment-patient.json is not the Patient CompartmentDefinition")
    return MappingProxyType({entry["code"]: tuple(entry["param"])
                             for entry in definition.get("resource", ()) if entry.get("param")})


@dataclass(frozen=True, slots=True)
class PatientCompartment:
    """One patient's compartment: what a patient-context token may see and write."""

    patient_id: str

    @property
    def reference(self) -> str:
        """`Patient/<id>`, as resources in the compartment refer to it."""
        return f"{PATIENT}/{self.patient_id}"

    def params_for(self, resource_type: str) -> tuple[str, ...]:
        """The definition's inclusion parameters for `resource_type` (empty: not in it)."""
        return compartment_params().get(resource_type, ())

    def confines(self, resource_type: str) -> bool:
        """True when access to `resource_type` must stay inside the compartment."""
        if resource_type in UNCONFINED_DIRECTORY_TYPES:
            return False
        return resource_type == PATIENT or bool(self.params_for(resource_type))

    def search_clause(self, resource_type: str) -> Clause | None:
        """The clause to AND into every search of a confined type; None when unconfined."""
        if not self.confines(resource_type):
            return None
        predicates: list[Predicate] = [ReferenceMatch(param, PATIENT, self.patient_id)
                                       for param in self.params_for(resource_type)]
        if resource_type == PATIENT:
            predicates.insert(0, IdMatch((self.patient_id,)))
        return Clause(tuple(predicates))

    def contains(self, resource_type: str, source: Resource | Iterable[IndexEntry], *,
                 resource_id: str | None = None, registry: SearchParameterRegistry | None = None,
                 base_url: str | None = None) -> bool:
        """True when the resource (JSON, or its index entries) is in the compartment.

        Only local references count: `https://elsewhere/fhir/Patient/<id>` is someone else.
        Pass `base_url` with JSON so absolute references to this server count as local.
        """
        if isinstance(source, Mapping):
            resource_id = resource_id if resource_id is not None else source.get("id")
        if resource_type == PATIENT and resource_id == self.patient_id:
            return True
        return refers_to(index_of(source, registry, base_url), self.params_for(resource_type),
                         PATIENT, self.patient_id)

    def admits(self, resource_type: str, source: Resource | Iterable[IndexEntry], *,
               resource_id: str | None = None, registry: SearchParameterRegistry | None = None,
               base_url: str | None = None) -> bool:
        """True when a patient-context token may read or write this resource.

        Unconfined types (Slot, Schedule, types outside the compartment) are admitted here;
        whether the role may touch them at all is the policy's question, not this one.
        """
        if not self.confines(resource_type):
            return True
        return self.contains(resource_type, source, resource_id=resource_id,
                             registry=registry, base_url=base_url)


@dataclass(frozen=True, slots=True)
class PractitionerCompartment:
    """One practitioner's compartment: the appointments and messages a doctor takes part in."""

    practitioner_id: str

    @property
    def reference(self) -> str:
        """`Practitioner/<id>`, as resources in the compartment refer to it."""
        return f"{PRACTITIONER}/{self.practitioner_id}"

    def confines(self, resource_type: str) -> bool:
        """True when access to `resource_type` must stay inside the compartment."""
        return resource_type in PRACTITIONER_COMPARTMENT_PARAMS

    def search_clause(self, resource_type: str) -> Clause | None:
        """The clause to AND into every search of a confined type; None when unconfined."""
        params = PRACTITIONER_COMPARTMENT_PARAMS.get(resource_type, ())
        if not params:
            return None
        return Clause(tuple(ReferenceMatch(param, PRACTITIONER, self.practitioner_id)
                            for param in params))

    def admits(self, resource_type: str, source: Resource | Iterable[IndexEntry], *,
               registry: SearchParameterRegistry | None = None,
               base_url: str | None = None) -> bool:
        """True when the doctor may read or write this resource (unconfined types: always)."""
        params = PRACTITIONER_COMPARTMENT_PARAMS.get(resource_type)
        if params is None:
            return True
        return refers_to(index_of(source, registry, base_url), params, PRACTITIONER,
                         self.practitioner_id)


def index_of(source: Resource | Iterable[IndexEntry], registry: SearchParameterRegistry | None,
             base_url: str | None) -> Iterable[IndexEntry]:
    """The index entries of a resource given as JSON, or the entries themselves."""
    if isinstance(source, Mapping):
        return extract_index(dict(source), registry or load_registry(), base_url=base_url)
    return source


def refers_to(entries: Iterable[IndexEntry], params: Iterable[str], target_type: str,
              target_id: str) -> bool:
    """True when one of `params` is a local reference to `target_type/target_id`."""
    wanted = set(params)
    return any(isinstance(entry, ReferenceEntry) and entry.param in wanted
               and entry.target_type == target_type and entry.target_id == target_id
               and entry.url is None
               for entry in entries)
