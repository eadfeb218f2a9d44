"""Validate custom resources with the OpenAPI schemas of their CustomResourceDefinitions, as the
API server does: the CRDs kept in deploy/k8s/crds (one folder per operator release).

Like kubectl's strict field validation, a field the schema does not declare is an error (the
API server would drop it, so the setting would silently do nothing), except where the schema
says ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "crds"


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the closed schema, for every served version of every CRD."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    found[key] = _closed(version["schema"]["openAPIV3Schema"])
    return found


def groups() -> set[str]:
    """API groups there are CRDs for."""
    return {api.split("/")[0] for api, _ in schemas()}


def validate(resource: dict[str, Any]) -> list[str]:
    """What is wrong with ``resource`` by its CRD: empty when it would be accepted."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    schema = schemas().get(key)
    where = f"{key[1]}/{resource.get('metadata', {}).get('name', '?')}"
    if schema is None:
        served = sorted(api for api, kind in schemas() if kind == key[1])
        return [f"{where}: {key[0]} {key[1]} is not served (served: {served or 'none'})"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{where}: {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(resource)
    ]
