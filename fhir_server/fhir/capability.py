"""Build the CapabilityStatement from what the server implements.

Resources, interactions, search parameters, includes and operations are derived from the
routers and the search-parameter registry; the template in `capability/` only adds the
descriptive parts. So the statement cannot advertise what the server does not do.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fhir_server.fhir.resource_types import is_searchable
from fhir_server.fhir.search.parameters import SearchParameterDef, SearchParameterRegistry

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
COMMON_PARAMS = frozenset({"_id", "_lastUpdated", "_tag", "_profile", "_security"})


def build_capability_statement(*, template: dict[str, Any], registry: SearchParameterRegistry,
                               resource_types: Sequence[str],
                               type_interactions: Mapping[str, Iterable[str]],
                               system_interactions: Iterable[str],
                               operations: Iterable[dict[str, Any]], base_url: str,
                               version: str, date: str,
                               oauth_uris: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The full statement; `type_interactions` says what each type offers, `operations` are
    the OperationDefinitions the server runs, `oauth_uris` the embedded server's endpoints."""
    statement = copy.deepcopy(template)
    statement["date"] = date
    statement["software"] = {**statement.get("software", {}), "version": version}
    statement["implementation"] = {"description": "fhir-scheduler", "url": base_url}
    rest = statement["rest"][0]
    # Rest-level parameters apply to every type, so only those every type supports.
    common = sorted(code for code in COMMON_PARAMS & set(registry.for_type(resource_types[0]))
                    if all(code in _params(rt, registry) for rt in resource_types))
    rest["resource"] = [_resource(rt, registry, resource_types,
                                  sorted(set(type_interactions[rt])), frozenset(common))
                        for rt in resource_types]
    rest["security"] = _security(oauth_uris)
    rest["interaction"] = [{"code": code} for code in sorted(set(system_interactions))]
    rest["searchParam"] = [_search_param(registry.get(resource_types[0], code))
                           for code in common]
    rest["operation"] = [{"name": op["code"], "definition": op["url"]}
                         for op in operations if op.get("system")]
    for op in operations:
        for resource in rest["resource"]:
            if resource["type"] in op.get("resource", []) and (op.get("type") or op.get("instance")):
                resource.setdefault("operation", []).append(
                    {"name": op["code"], "definition": op["url"]})
    return statement


def _security(oauth_uris: Mapping[str, str] | None) -> dict[str, Any]:
    """SMART-on-FHIR; the `oauth-uris` extension when we know the endpoints (legacy clients
    such as `fhirclient` read only that)."""
    security: dict[str, Any] = {
        "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                     "text": "OAuth2 using SMART-on-FHIR profile"}],
    }
    if oauth_uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": [
            {"url": name, "valueUri": uri} for name, uri in oauth_uris.items()]}]
    return security


def _params(resource_type: str,
            registry: SearchParameterRegistry) -> dict[str, SearchParameterDef]:
    """The registered parameters `resource_type`'s search really supports."""
    return {code: param for code, param in registry.for_type(resource_type).items()
            if is_searchable(resource_type, code)}


def _resource(resource_type: str, registry: SearchParameterRegistry,
              resource_types: Sequence[str], interactions: list[str],
              common: frozenset[str]) -> dict[str, Any]:
    params = _params(resource_type, registry)
    references = sorted(code for code, p in params.items() if p.type == "reference")
    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned",
        "readHistory": "vread" in interactions,
        "updateCreate": "update" in interactions,
        "conditionalCreate": "create" in interactions,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": [f"{resource_type}:{code}" for code in references],
        "searchRevInclude": _revincludes(resource_type, registry, resource_types),
        "searchParam": [_search_param(params[code]) for code in sorted(params)
                        if code not in common],
    }


def _revincludes(target: str, registry: SearchParameterRegistry,
                 resource_types: Sequence[str]) -> list[str]:
    found = []
    for source in resource_types:
        for code, param in sorted(_params(source, registry).items()):
            if param.type == "reference" and (not param.targets or target in param.targets):
                found.append(f"{source}:{code}")
    return found


def _search_param(param: Any) -> dict[str, Any]:
    entry = {"name": param.code, "type": param.type}
    if param.url:
        entry["definition"] = param.url
    if param.description:
        entry["documentation"] = param.description
    return entry
