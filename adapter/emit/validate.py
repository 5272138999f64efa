"""Every emitted Bundle is checked before it leaves: each resource against the fhir.resources models
(R4 -> R4B models, R5), each entry a conditional create, each reference inside the Bundle resolvable.

fhir.resources does not enforce code enumerations or reference targets (STANDARDS.md §6.2), so the
structural rules this project relies on are checked here as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class BundleError(ValueError):
    """The emitter built something invalid: a bug, reported with the resource and the reason."""


def _model_class(version: str, resource_type: str):
    if version == "R4":
        from fhir.resources.R4B import get_fhir_model_class
    else:
        from fhir.resources import get_fhir_model_class
    return get_fhir_model_class(resource_type)


def references(node: Any) -> Iterator[str]:
    """Every Reference.reference string anywhere under `node`."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def validate(bundle: dict[str, Any], version: str) -> None:
    from pydantic import ValidationError

    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise BundleError("not a transaction Bundle")
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    if len(set(full_urls)) != len(full_urls):
        raise BundleError("two entries share a fullUrl")
    for entry in bundle["entry"]:
        resource = entry["resource"]
        name = f"{resource['resourceType']} {entry['fullUrl']}"
        request = entry.get("request", {})
        if request.get("method") != "POST" or not request.get("ifNoneExist"):
            raise BundleError(f"{name}: not a conditional create")
        try:
            _model_class(version, resource["resourceType"]).model_validate(resource)
        except ValidationError as exc:
            raise BundleError(f"{name} is not valid FHIR {version}: {exc}") from exc
    try:
        _model_class(version, "Bundle").model_validate(bundle)
    except ValidationError as exc:
        raise BundleError(f"the Bundle is not valid FHIR {version}: {exc}") from exc
    dangling = sorted(set(references(bundle)) - set(full_urls))
    if dangling:
        raise BundleError(f"references that do not resolve inside the Bundle: {', '.join(dangling)}")
