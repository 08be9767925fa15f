"""JSON the zoo writes and checks: strict JSON (no NaN or Infinity, which most parsers refuse),
and a validator for the part of JSON Schema the model-card schema uses.

The validator covers `type` (one or a list), `required`, `properties`, `additionalProperties`
(false or a schema), `items`, `enum`, `const`, `pattern`, `minimum`, `allOf`, `if`/`then`/`else`
and `$ref` to `#/$defs/NAME`; other keywords (`description`, `title`, ...) are annotations. The
`jsonschema` package reads the same schema files, but the zoo does not depend on it.
"""

from __future__ import annotations

import json
import math
import re

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def finite_or_none(value):
    """`value` with every float that is NaN or infinite (NumPy's too) replaced by None, in nested
    dicts, lists and tuples: what strict JSON can hold."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind == "f":
        return float(value) if math.isfinite(float(value)) else None
    return value


def dumps_strict(value, **kwargs) -> str:
    """`json.dumps` that every JSON parser reads: non-finite floats become null (`finite_or_none`),
    never the `NaN` or `Infinity` Python writes by default."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def schema_errors(value, schema: dict, *, root: dict | None = None, path: str = "") -> list[str]:
    """What in `value` breaks `schema` (the subset of JSON Schema this module's docstring lists),
    as `field.sub[2].name: what is wrong` lines; empty when it validates.

    Args:
        value: the parsed JSON document (or a part of it).
        schema: the schema (or subschema) to check it against.
        root: the document `$ref`s resolve in (default: `schema`).
        path: where `value` is in the document, for the messages.
    """
    root = schema if root is None else root
    where = path or "(the document)"
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"Only `#/$defs/NAME` references are supported. Received: $ref={ref!r}")
        return schema_errors(value, root["$defs"][ref[len("#/$defs/"):]], root=root, path=path)
    for part in schema.get("allOf", ()):
        errors = schema_errors(value, part, root=root, path=path)
        if errors:
            return errors
    if "if" in schema:
        branch = "then" if not schema_errors(value, schema["if"], root=root, path=path) else "else"
        if branch in schema:
            errors = schema_errors(value, schema[branch], root=root, path=path)
            if errors:
                return errors
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(TYPES[t](value) for t in types):
            return [f"{where}: expected {' or '.join(types)}, received {type(value).__name__} {_short(value)}"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: expected {schema['const']!r}, received {_short(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: expected one of {schema['enum']}, received {_short(value)}"]
    errors = []
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {schema.get('pattern_message', 'does not match ' + schema['pattern'])}, "
                      f"received {_short(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in schema \
            and value < schema["minimum"]:
        errors.append(f"{where}: expected at least {schema['minimum']}, received {value}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root=root, path=f"{path}[{i}]")
    if isinstance(value, dict):
        prefix = f"{path}." if path else ""
        errors += [f"{prefix}{k}: missing (required)" for k in schema.get("required", ()) if k not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in properties:
                errors += schema_errors(v, properties[k], root=root, path=f"{prefix}{k}")
            elif extra is False:
                errors.append(f"{prefix}{k}: not a field of this schema")
            elif isinstance(extra, dict):
                errors += schema_errors(v, extra, root=root, path=f"{prefix}{k}")
    return errors


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
