"""The fast path of canonical JSON must give exactly the bytes of the RFC 8785 reference."""

import hashlib
import math

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from elspeth import canonical
from elspeth.errors import NonCanonicalValueError

safe_ints = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
scalars = st.none() | st.booleans() | safe_ints | st.text() | st.floats(allow_nan=False, allow_infinity=False)
flat_rows = st.dictionaries(st.text(), scalars, max_size=8)
nested = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


def _valid_text(value) -> bool:
    try:
        rfc8785.dumps(value)
    except Exception:
        return False
    return True


@given(flat_rows)
def test_flat_rows_match_reference(row):
    if _valid_text(row):
        assert canonical.canonical_bytes(row) == rfc8785.dumps(row)


@given(nested)
def test_nested_values_match_reference(value):
    if _valid_text(value):
        assert canonical.canonical_bytes(value) == rfc8785.dumps(value)


# Call bodies mostly: objects and lists of strings, ints, booleans and nulls, which the fast path takes whole.
trees = st.recursive(
    st.none() | st.booleans() | safe_ints | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


# Every finite float (subnormals included), with more weight where ECMAScript's and Python's ways of writing a
# number part: integral values (below and above 2**53), the edges of the exponent-free ranges (1e-7, 1e-4,
# 1e16, 1e21), and the far ends of the exponent.
_edges = [1e-7, 1e-4, 1e16, 1e21, 2.0**53, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
edge_floats = (
    st.sampled_from(_edges)
    .flatmap(lambda edge: st.sampled_from([edge, math.nextafter(edge, 0), math.nextafter(edge, math.inf)]))
    .filter(math.isfinite)
)
any_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70).map(float),
    st.floats(min_value=1e-9, max_value=1e-3),
    st.floats(min_value=1e14, max_value=1e23),
    edge_floats,
).flatmap(lambda f: st.sampled_from([f, -f]))
typed_rows = st.dictionaries(st.text(), st.none() | st.booleans() | safe_ints | st.text() | any_floats, max_size=8)


@settings(max_examples=2000)
@given(any_floats)
@example(-0.0)
@example(0.0)
def test_every_float_matches_reference(f):
    for value in ({"x": f}, [f], {"a": 1, "b": [f, {"c": f}], "d": "text"}):
        assert canonical.canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=500)
@given(typed_rows)
def test_flat_rows_with_floats_match_reference(row):
    if _valid_text(row):
        assert canonical.canonical_bytes(row) == rfc8785.dumps(row)


@given(
    st.recursive(typed_rows, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3))
)
def test_trees_with_floats_match_reference(value):
    if _valid_text(value):
        assert canonical.canonical_bytes(value) == rfc8785.dumps(value)


def test_a_typed_row_takes_the_fast_path():
    """The speed of a typed source's rows depends on it (issue 11): an int and a float, integral or not."""
    for row in ({"id": 7, "amount": 12.34, "name": "x"}, {"id": 7, "amount": 100.0}, {"ratio": -0.0}):
        assert canonical._tree_kind(row) != canonical._OTHER


@given(trees)
def test_trees_without_floats_match_reference(value):
    if _valid_text(value):
        assert canonical.canonical_bytes(value) == rfc8785.dumps(value)
    else:
        with pytest.raises(NonCanonicalValueError):
            canonical.canonical_bytes(value)


def test_the_fast_path_keeps_the_depth_limit():
    deep: list = []
    for _ in range(canonical.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(NonCanonicalValueError, match="nested deeper"):
        canonical.canonical_bytes({"a": deep})


@given(nested)
def test_storage_json_round_trips_types(value):
    if _valid_text(value):
        assert canonical.loads(canonical.dumps(value)) == value


def test_key_order_kept_in_storage_but_not_in_hash():
    assert canonical.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert canonical.stable_hash({"b": 1, "a": 2}) == canonical.stable_hash({"a": 2, "b": 1})


def test_float_and_int_distinguished_in_storage():
    assert canonical.loads(canonical.dumps({"x": 1.0}))["x"].__class__ is float


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 2**60, object(), "\ud800"])
def test_non_canonical_values_are_refused(bad):
    with pytest.raises(NonCanonicalValueError):
        canonical.stable_hash({"x": bad})


def test_refusal_says_where():
    with pytest.raises(NonCanonicalValueError, match=r"\$\.outer\.inner\[1\]"):
        canonical.dumps({"outer": {"inner": [1, math.nan]}})


@settings(max_examples=500)
@given(typed_rows)
@example({"b": 1, "a": 2.5, "c": None, "d": True, "e": "x"})  # keys out of order: the two texts differ
@example({"a": "\ud800", "b": 1})  # a lone surrogate
def test_a_source_rows_text_and_hash_match_storage_and_reference(row):
    """A flat row takes `dumps_and_hash`'s own path (issue 11): its stored text is `dumps`'s, its hash the
    SHA-256 of the reference's bytes, and what the reference refuses is refused."""
    if _valid_text(row):
        assert canonical.dumps_and_hash(row) == (canonical.dumps(row), hashlib.sha256(rfc8785.dumps(row)).hexdigest())
    else:
        with pytest.raises(NonCanonicalValueError):
            canonical.dumps_and_hash(row)


def test_the_flat_path_keeps_a_bounded_number_of_key_sequences():
    for i in range(canonical._FLAT_PLANS_MAX + 10):
        row = {f"k{i}": 1, "v": 2.5}
        assert canonical.dumps_and_hash(row)[1] == hashlib.sha256(rfc8785.dumps(row)).hexdigest()
    assert len(canonical._flat_plans) <= canonical._FLAT_PLANS_MAX
