"""Validate custom resources offline against their CRD's openAPIV3Schema, with jsonschema.

kubernetes-validate knows only built-in kinds (for a CloudNativePG `Cluster` it just warns), so
the `Cluster` is checked here against the schema that the API server itself would apply.

A CRD schema is OpenAPI v3 ("structural schema"), close to JSON Schema draft 4 but not equal:

- Unknown fields: the API server drops them, and `kubectl apply` (field validation `Strict`,
  the default) rejects them. So every object schema that lists `properties` gets
  `additionalProperties: false`, unless it says `x-kubernetes-preserve-unknown-fields`.
- `nullable: true` adds "null" to the allowed types.
- `x-kubernetes-int-or-string` means an integer or a string.
- `x-kubernetes-embedded-resource` objects may carry apiVersion, kind and metadata.
- `x-kubernetes-validations` are CEL rules: jsonschema cannot run them, so they are counted
  and left to the API server (CloudNativePG's are few; its webhook checks the rest).
- `x-kubernetes-list-type`/`-map-type` describe how lists merge; not a validity question here.
- `format` (int32, date-time, ...) is informational for jsonschema and dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Keywords copied as they are: the draft 4 vocabulary that OpenAPI v3 shares.
_PLAIN = {
    "type",
    "enum",
    "required",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
}
# Keywords with no effect on validity.
_IGNORED = {"description", "default", "example", "externalDocs", "format", "title"}


def to_json_schema(node: dict[str, Any], unchecked: list[str] | None = None) -> dict[str, Any]:
    """Convert one node of a structural schema (recursively) to JSON Schema draft 4.

    CEL rules found on the way are appended to `unchecked`.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(child, unchecked) for name, child in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value, unchecked)
        elif key == "additionalProperties":
            out[key] = to_json_schema(value, unchecked) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(child, unchecked) for child in value]
        elif key == "not":
            out[key] = to_json_schema(value, unchecked)
        elif key == "x-kubernetes-validations":
            if unchecked is not None:
                unchecked.extend(rule["rule"] for rule in value)
        elif key in _PLAIN:
            out[key] = value
        elif key in _IGNORED or key.startswith("x-kubernetes-") or key == "nullable":
            continue  # handled below, or without effect on validity
        else:
            raise ValueError(f"unexpected keyword in a CRD schema: {key}")

    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    strict = not node.get("x-kubernetes-preserve-unknown-fields")
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class CrdValidator:
    """Validates resources of one CRD (all its served versions)."""

    def __init__(self, crd_path: Path) -> None:
        crd = yaml.safe_load(crd_path.read_text())
        spec = crd["spec"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.unchecked_rules: list[str] = []
        self._validators: dict[str, jsonschema.Draft4Validator] = {}
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = to_json_schema(version["schema"]["openAPIV3Schema"], self.unchecked_rules)
            jsonschema.Draft4Validator.check_schema(schema)
            self._validators[f"{self.group}/{version['name']}"] = jsonschema.Draft4Validator(schema)

    def handles(self, resource: dict[str, Any]) -> bool:
        """True if the resource is of this CRD's kind and group."""
        group = str(resource.get("apiVersion", "")).split("/")[0]
        return resource.get("kind") == self.kind and group == self.group

    def errors(self, resource: dict[str, Any]) -> list[str]:
        """Every schema violation, as `path: message`; empty when the resource is valid."""
        validator = self._validators.get(str(resource.get("apiVersion")))
        if validator is None:
            return [f"apiVersion {resource.get('apiVersion')} is not served by this CRD"]
        found = sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in found]
