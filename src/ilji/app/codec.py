"""Dataclasses to JSON-ready values and back, guided by their type hints.

Events and snapshot states are plain dataclasses. Encoding walks the value; decoding walks the
type hints, so a `datetime` field comes back as a `datetime`, a `Decimal` as a `Decimal`, and a
nested dataclass as itself. Supported: `str`, `int`, `float`, `bool`, `None`, `datetime`,
`date`, `UUID`, `Decimal`, enums, dataclasses, `list`/`tuple`/`set`/`frozenset`/`dict`,
`X | None` and `Literal`. Anything else is passed through as the JSON value it is.

Tolerant reader: decoding ignores keys the dataclass does not have (data written by a newer
producer, or a field that was removed) and fills missing keys from field defaults. A missing
key without a default is an `EventSchemaError`: the value cannot be invented.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ilji.app.errors import EventSchemaError


def to_json(value: Any) -> Any:
    """A JSON-ready value (dicts, lists, strings, numbers, booleans, None) for `value`."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        # Decimals travel as strings: a JSON number would become a binary float on the way back.
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k.value if isinstance(k, enum.Enum) else k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        # Sorted so that the same set always encodes to the same JSON (stable snapshots, diffs).
        return sorted((to_json(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise EventSchemaError(f"cannot encode a {type(value).__name__} as JSON")


@lru_cache(maxsize=1024)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(tp: Any, value: Any, path: str = "$") -> Any:
    """The value of type `tp` that `value` (decoded JSON) stands for; `path` names it in errors."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _from_union(typing.get_args(tp), value, path)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise EventSchemaError(f"{path}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin is not None:
        return _from_generic(origin, typing.get_args(tp), value, path)
    if tp is type(None):
        return None
    if value is None:
        raise EventSchemaError(f"{path}: null where a {getattr(tp, '__name__', tp)} is needed")
    if isinstance(tp, type):
        return _from_class(tp, value, path)
    return value


def _from_union(args: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return from_json(arg, value, path)
        except (EventSchemaError, ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise EventSchemaError(f"{path}: {value!r} matches none of the union's types ({'; '.join(errors)})")


def _from_generic(origin: Any, args: tuple[Any, ...], value: Any, path: str) -> Any:
    if origin in (list, set, frozenset) or (isinstance(origin, type) and issubclass(origin, list)):
        _expect(value, list, path)
        inner = args[0] if args else Any
        items = [from_json(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return origin(items) if origin in (set, frozenset) else items
    if origin is tuple:
        _expect(value, list, path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise EventSchemaError(f"{path}: expected {len(args)} items, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(from_json(a, v, f"{path}[{i}]") for i, (a, v) in pairs)
    if origin in (dict, Mapping):
        _expect(value, dict, path)
        key_type, value_type = args if args else (Any, Any)
        return {
            from_json(key_type, k, f"{path}.key"): from_json(value_type, v, f"{path}.{k}")
            for k, v in value.items()
        }
    if origin is Sequence:
        _expect(value, list, path)
        inner = args[0] if args else Any
        return tuple(from_json(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    return value


def _from_class(tp: type, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(tp):
        _expect(value, dict, path)
        return decode_dataclass(tp, value, path)
    if issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise EventSchemaError(f"{path}: {value!r} is not a {tp.__name__}") from None
    if tp is bool:
        _expect(value, bool, path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            # A key of a dict[int, ...] arrives as a string: JSON object keys are strings.
            if isinstance(value, str) and value.lstrip("-").isdigit():
                return int(value)
            raise EventSchemaError(f"{path}: {value!r} is not an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventSchemaError(f"{path}: {value!r} is not a number")
        return float(value)
    if tp is str:
        _expect(value, str, path)
        return value
    if tp is datetime:
        _expect(value, str, path)
        return _parse(datetime.fromisoformat, value, path)
    if tp is date:
        _expect(value, str, path)
        return _parse(date.fromisoformat, value, path)
    if tp is uuid.UUID:
        _expect(value, str, path)
        return _parse(uuid.UUID, value, path)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise EventSchemaError(f"{path}: {value!r} is not a decimal")
        return Decimal(str(value))
    return value


def _parse(parse: Any, value: str, path: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise EventSchemaError(f"{path}: {exc}") from None


def _expect(value: Any, kind: type, path: str) -> None:
    if not isinstance(value, kind):
        raise EventSchemaError(f"{path}: expected a JSON {kind.__name__}, got {type(value).__name__}")


def decode_dataclass(cls: type, data: Mapping[str, Any], path: str = "$") -> Any:
    """An instance of dataclass `cls` from a JSON object, by the tolerant-reader rules above."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = from_json(hints.get(f.name, Any), data[f.name], f"{path}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EventSchemaError(f"{path}: field {f.name!r} of {cls.__name__} is missing")
    return cls(**kwargs)
