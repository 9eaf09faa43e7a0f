"""JSON text at speed, held to Python's json: the byte scan behind the one-parse loader says a document is
free of repeated keys and deep nesting only when the careful parse (``json.loads`` with a duplicate hook)
agrees, and a large file loads by the fast path to the same model the careful path builds; the Rust
encoder writes json.dumps's text byte for byte (so every sha256 over canonical text is unchanged)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bondfolio.errors import InputError
from bondfolio.inputs import load_holdings, load_snapshot
from bondfolio.inputs.base import (
    MAX_DEPTH,
    JsonDocument,
    canonical_json,
    canonical_object,
    parse_text,
    read_source,
    validate_document,
)
from bondfolio.inputs.jsontext import dumps, guards_pass
from bondfolio.inputs.snapshot import Snapshot
from tests.factories import EXAMPLE, opportunity, snapshot


def careful(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """The reference: no object repeats a (decoded) key and nothing nests deeper than ``max_depth``."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise KeyError("repeat")
        return dict(pairs)

    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max(map(depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(depth, value), default=0)
        return 0

    try:
        return depth(json.loads(text, object_pairs_hook=unique)) <= max_depth
    except KeyError:
        return False


# keys and strings rich in what could fool a byte scan: quotes, backslashes, braces, colons, non-ASCII
TRICKY = st.sampled_from(["a", "b", "ab", "x:y", '"', "\\", "{", "}", "[", "]", ":", ",", " ", "é", "\u2028",
                          "\U0001f600", "abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz012345678!"])
TEXT = st.lists(TRICKY, max_size=3).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False,
                    allow_infinity=False), TEXT)
SPACE = st.sampled_from(["", " ", "\n  ", "\t"])


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON object text, keys drawn from a small set (so objects often repeat one), random spacing."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        key = json.dumps(draw(TEXT), ensure_ascii=draw(st.booleans()))
        kind = draw(st.integers(0, 3)) if depth < 4 else 0
        if kind == 1:
            value = draw(documents(depth + 1))
        elif kind == 2:
            items = [draw(documents(depth + 1)) if draw(st.booleans()) else json.dumps(draw(SCALARS))
                     for _ in range(draw(st.integers(0, 3)))]
            value = "[" + ",".join(items) + "]"
        else:
            value = json.dumps(draw(SCALARS), ensure_ascii=draw(st.booleans()))
        parts.append(f"{key}{draw(SPACE)}:{draw(SPACE)}{value}")
    return "{" + draw(SPACE) + ("," + draw(SPACE)).join(parts) + draw(SPACE) + "}"


@settings(max_examples=600, deadline=None)
@given(documents())
def test_scan_passes_only_what_the_careful_parse_passes(text: str) -> None:
    if guards_pass(text.encode("utf-8"), MAX_DEPTH):
        assert careful(text)


@settings(max_examples=400, deadline=None)
@given(documents())
def test_scan_decides_every_document_whose_keys_have_no_escapes(text: str) -> None:
    if "\\" not in text:  # no escapes anywhere (the scan leaves keys with escapes to the careful path)
        assert guards_pass(text.encode("utf-8"), MAX_DEPTH) == careful(text)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}', True),    # same key, different objects
    ('{"a": 1, "b": {"x": 2}, "a": 3}', False),                      # a repeat after a child object
    ('{"a": "}", "a": 2}', False),                                   # a brace inside a string
    ('{"a": "x\\"}, \\"a\\": 1", "b": 2}', True),                    # escaped quotes hide a "key"
    ('{"a\\\\": 1, "b": 2}', False),                                 # a key with an escape: not sure
    ('{"k": [{"z": 1, "z": 2}]}', False),                            # inside an array of objects
    ('{"abcdefghijklmnopqrstuvwxyz0123456789": 1, "abcdefghijklmnopqrstuvwxyz012345678!": 2}', True),
    ('{"abcdefghijklmnopqrstuvwxyz0123456789": 1, "abcdefghijklmnopqrstuvwxyz0123456789": 2}', False),
    ('{"abcdefghXjklmnopqrs": 1, "abcdefghYjklmnopqrs": 2}', True),  # alike at both ends, not the same
    ('{"abcdefghXjklmnopqrs": 1, "b": {"abcdefghXjklmnopqrs": 2}}', True),
    ('{"x": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", False),     # one level too deep
    ('{"x": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}", True),
    ('{"x": "' + "[" * 100 + '"}', True),                            # brackets in a string do not nest
    ('{"a": "unterminated}', False),
])
def test_scan_cases(text: str, expected: bool) -> None:
    assert guards_pass(text.encode("utf-8"), MAX_DEPTH) is expected


def big_snapshot(n: int = 2000) -> dict[str, Any]:
    opps = [opportunity(f"o{i}", 0.01 + i * 1e-6, tags=["issuer:x"], exposures={"delta:ETH": 0.1})
            for i in range(n)]
    return snapshot(opps, factors={"loadings": [[0.5, -0.25]] * n, "factor_covariance": [[1e-4, 0.0], [0.0, 1e-4]],
                                   "specific_variance": [1e-5] * n})


def test_fast_path_builds_the_careful_model(tmp_path) -> None:
    for raw in (big_snapshot(), json.loads((EXAMPLE / "snapshot.json").read_text())):
        path = tmp_path / "s.json"
        path.write_text(json.dumps(raw, indent=1))
        fast = load_snapshot(path)
        data, label = read_source(path, "snapshot")
        slow = validate_document(Snapshot, data, label)
        assert fast.model_dump_json() == slow.model_dump_json()


def test_repeat_deep_in_a_large_file_named(tmp_path) -> None:
    text = json.dumps(big_snapshot())
    at = text.index('"apy"', len(text) // 2)
    path = tmp_path / "s.json"
    path.write_text(text[:at] + '"apy": 0.5, ' + text[at:])
    with pytest.raises(InputError, match="gives the key 'apy' twice in one object"):
        load_snapshot(path)


def test_holdings_repeat_named() -> None:
    with pytest.raises(InputError, match="gives the key 'a' twice"):
        load_holdings('{"positions": {"a": 1.0, "b": 2.0, "a": 3.0}, "cash": 0.0}')


# ---------------------------------------------------------------------------------------------- encoder
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(1e-10, 1e-3), st.floats(-1e-3, -1e-10),              # where orjson and repr spell differently
    st.integers(-1074, 1023).map(lambda e: math.ldexp(1.0, e)),    # powers of two, every exponent
    st.sampled_from([0.0, -0.0, 1e-5, 1e-4, 9.999999999999999e-05, 1e-9, 1e-10, 1e16, 1e15, 5e-324]),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), FLOATS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.lists(JSON, max_size=5), st.dictionaries(TEXT, JSON, max_size=5)))
def test_encoder_writes_json_dumps_text(data: Any) -> None:
    assert dumps(data, sort_keys=True) == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert dumps(data, indent=2) == json.dumps(data, indent=2, ensure_ascii=False)
    assert canonical_json(data, finite=True) == canonical_json(data)
    if isinstance(data, dict):
        assert canonical_object({k: canonical_json(v) for k, v in data.items()}) == canonical_json(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOATS, min_size=1, max_size=200))
def test_compact_spelling_reads_back_to_the_same_numbers(xs: list[float]) -> None:
    text = dumps(xs, indent=2, python_floats=False)
    assert text is not None and json.loads(text) == xs


@pytest.mark.parametrize("data", [[2**64], {"a": [2**70]}, {1: "a"}, ["\ud800"], [float("nan")], 1.5, "x"])
def test_encoder_leaves_what_it_cannot_write_exactly_to_json_dumps(data: Any) -> None:
    if isinstance(data, list) and data and isinstance(data[0], float):
        assert dumps(data) == "[null]"  # orjson's NaN: why finite=True is the caller's promise
        with pytest.raises(ValueError, match="not JSON compliant"):
            canonical_json(data, finite=False)
    else:
        assert dumps(data) is None


def test_numbers_inside_strings_keep_their_spelling() -> None:
    data = {"note": "rates: 0.00005, e-5 and 1e-7]", "x": [5e-05, 1e-07, "0.00001"], "y": 2.5e-6}
    assert dumps(data, sort_keys=True) == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


PARSED = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), FLOATS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, NaN equal to NaN and 0.0 told from -0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


@settings(max_examples=800, deadline=None)
@given(st.dictionaries(TEXT, PARSED, max_size=5), st.booleans(), st.sampled_from([None, 1]))
def test_fast_parse_reads_what_json_loads_reads(data: dict[str, Any], ascii: bool, indent: int | None) -> None:
    text = json.dumps(data, ensure_ascii=ascii, indent=indent)  # NaN and Infinity tokens included
    parsed = parse_text(text, "doc")
    assert isinstance(parsed, JsonDocument) and parsed.text == text
    assert same(dict(parsed), json.loads(text))
