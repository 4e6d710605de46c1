"""Fuzzing the library's validation with hypothesis: any input is either accepted as the rules
say or refused with a `ValidationError` (an `IljiError` from the store), never another exception.

The checks are plain functions (`check_*`) with a strategy each in `PROPERTIES`; the tests
below run them with a modest number of examples, and `bench/bad_input.py` runs the same
ones with many more. `GENERATED` counts the examples each one saw.
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ilji.domain.errors import IljiError, ValidationError
from ilji.domain.events import MAX_SAFE_POSITION, NewEvent, StreamState
from ilji.domain.validation import (
    MAX_READ_LIMIT,
    MAX_STREAM_NAME_LENGTH,
    MAX_TYPE_LENGTH,
    validate_category,
    validate_event_type,
    validate_expected_version,
    validate_limit,
    validate_stream_name,
)
from ilji.store.encoding import encode_object
from ilji.store.memory import MemoryEventStore

#: Examples seen per property (the campaign prints these).
GENERATED: Counter[str] = Counter()

# -- strategies ----------------------------------------------------------------------------------

# Characters that matter to names and JSON: separators, quotes, controls, spaces, marks, lone
# surrogates, non-Latin letters, emoji; and fragments that look like SQL or escapes.
TRICKY = [*"$-'\";%/\\?#*_.:\x00\t\n\x7f\x85\xa0\u200b\u200d\u200f\u2028\u3000\ufeff\ud800\udfff일😀"]
FRAGMENTS = ["'; DROP TABLE ilji.events; --", "%00", "%FF", "\\u0000", "${x}", "' OR '1'='1"]
# Every code point, surrogates included (hypothesis leaves them out by default).
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.lists(st.one_of(ANY_CHAR, st.sampled_from(TRICKY), st.sampled_from(FRAGMENTS)), max_size=30).map(
    "".join
)
LONG_TEXT = st.text(alphabet=st.sampled_from(["a", "-", " ", "é"]), min_size=195, max_size=206)
NOT_TEXT = st.one_of(
    st.none(), st.integers(), st.floats(), st.binary(max_size=8), st.lists(st.integers(), max_size=2)
)
NAMES = st.one_of(TEXT, LONG_TEXT, TEXT.map(lambda s: "$" + s), NOT_TEXT)

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: beyond 64 bits must be refused
    st.floats(),  # NaN and infinities included: must be refused
    TEXT,
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.integers(), st.none()), children, max_size=4),
    ),
    max_leaves=25,
)


def _nest(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"n": value} if depth % 2 else [value]
    return {"deep": value}


OBJECTS = st.one_of(
    st.dictionaries(TEXT, JSON, max_size=5),
    st.integers(min_value=0, max_value=1200).map(_nest),
    JSON,  # not an object at all
)
VERSIONS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, MAX_SAFE_POSITION, MAX_SAFE_POSITION + 1, 2**63, -1]),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(list(StreamState)),
    st.sampled_from(["any", "no_stream", "exists", "ANY", "", "3", "latest"]),
    TEXT,
)


# -- the rules, said independently of the code under test ---------------------------------------


def _forbidden(char: str) -> bool:
    # Whitespace, control characters and surrogates may not appear in names or types.
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cs")


def _name_ok(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and not any(_forbidden(c) for c in value)


def _outcome(call: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, result) or (False, the ValidationError); any other exception propagates."""
    try:
        result = call()
    except ValidationError as exc:
        refusal = exc
    else:
        return True, result
    assert refusal.field and refusal.message  # a refusal names what is wrong
    return False, refusal


# -- the checks ----------------------------------------------------------------------------------


def check_stream_name(value: object) -> None:
    """A stream name is accepted exactly when the rules allow it."""
    GENERATED["stream names"] += 1
    accepted, result = _outcome(lambda: validate_stream_name(value))
    expected = _name_ok(value, MAX_STREAM_NAME_LENGTH) and not str(value).startswith("$")
    assert accepted == expected, (value, result)
    if accepted:
        assert result is value


def check_category(value: object) -> None:
    """A category is a stream name without '-' ('$' allowed)."""
    GENERATED["categories"] += 1
    accepted, result = _outcome(lambda: validate_category(value))
    assert accepted == (_name_ok(value, MAX_STREAM_NAME_LENGTH) and "-" not in str(value)), (value, result)


def check_event_type(value: object) -> None:
    """An event type follows the name rules, '$' allowed."""
    GENERATED["event types"] += 1
    accepted, result = _outcome(lambda: validate_event_type(value))
    assert accepted == _name_ok(value, MAX_TYPE_LENGTH), (value, result)


def check_expected_version(value: object) -> None:
    """An expected version is an int from 0 to MAX_SAFE_POSITION, or a stream state."""
    GENERATED["expected versions"] += 1
    accepted, result = _outcome(lambda: validate_expected_version(value))
    if isinstance(value, StreamState) or value in ("any", "no_stream", "exists"):
        assert accepted and isinstance(result, StreamState)
    elif type(value) is int:
        assert accepted == (0 <= value <= MAX_SAFE_POSITION), value
    else:
        assert not accepted, value


def check_limit(value: object) -> None:
    """A read limit is an int from 1 to MAX_READ_LIMIT."""
    GENERATED["read limits"] += 1
    accepted, _ = _outcome(lambda: validate_limit(value))
    assert accepted == (type(value) is int and 1 <= value <= MAX_READ_LIMIT), value


def _jsonable(value: Any, depth: int = 0) -> bool:
    """What PostgreSQL's jsonb can hold and orjson writes unchanged."""
    if depth > 250:
        return False
    if value is None or isinstance(value, bool | str):
        return not isinstance(value, str) or ("\x00" not in value and not any(_forbidden_s(c) for c in value))
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_jsonable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(k) and _jsonable(v, depth + 1) for k, v in value.items())
    return False


def _forbidden_s(char: str) -> bool:
    return unicodedata.category(char) == "Cs"  # lone surrogates cannot be UTF-8


def check_encode_object(value: Any) -> None:
    """Event data is stored as JSON exactly when it can be, and reads back equal."""
    GENERATED["event data encoding"] += 1
    if not isinstance(value, dict):
        return
    accepted, result = _outcome(lambda: encode_object(value, "data"))
    if accepted:
        assert orjson.loads(result) == value
    # orjson's own limits (nesting, 64-bit integers) are at least as strict as jsonb's.
    if _jsonable(value):
        assert accepted, (value, result)


def check_memory_append(
    stream: object, event_type: object, data: Any, expected: object, reuse_id: bool
) -> None:
    """The in-memory store appends or raises an IljiError; a refused append stores nothing."""
    GENERATED["in-memory appends"] += 1

    async def run() -> None:
        store = MemoryEventStore()
        await store.append("fuzz-base", [NewEvent("Seeded", {"n": 1})])
        first = uuid.uuid4()
        events = [NewEvent(event_type, data, id=first)]  # type: ignore[arg-type]
        events.append(NewEvent("Second", {}, id=first if reuse_id else uuid.uuid4()))
        before = len(await store.read_all(0, 100))
        try:
            result = await store.append(stream, events, expected)  # type: ignore[arg-type]
        except IljiError:
            assert len(await store.read_all(0, 100)) == before  # nothing partial
            return
        stored = await store.read_stream(result.stream, result.first_version, 10)
        assert [e.id for e in stored] == [e.id for e in events]
        assert stored[0].data == orjson.loads(orjson.dumps(data))

    asyncio.run(run())


#: Name -> (check, strategies of its arguments).
PROPERTIES: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "stream names": (check_stream_name, (NAMES,)),
    "categories": (check_category, (NAMES,)),
    "event types": (check_event_type, (NAMES,)),
    "expected versions": (check_expected_version, (VERSIONS,)),
    "read limits": (check_limit, (st.one_of(st.integers(), st.floats(), st.booleans(), TEXT),)),
    "event data encoding": (check_encode_object, (OBJECTS,)),
    "in-memory appends": (
        check_memory_append,
        (st.one_of(NAMES, st.just("fuzz-x")), NAMES, OBJECTS, VERSIONS, st.booleans()),
    ),
}


def fuzz(name: str, examples: int) -> Callable[[], None]:
    """A runnable hypothesis test of property `name` with `examples` examples."""
    check, strategies = PROPERTIES[name]
    return settings(max_examples=examples, deadline=None, database=None)(given(*strategies)(check))


# -- the tests (the campaign runs the same properties with more examples) --------------------------

test_stream_names = fuzz("stream names", 300)
test_categories = fuzz("categories", 150)
test_event_types = fuzz("event types", 150)
test_expected_versions = fuzz("expected versions", 200)
test_read_limits = fuzz("read limits", 100)
test_event_data_encoding = fuzz("event data encoding", 300)
test_in_memory_appends = fuzz("in-memory appends", 200)
