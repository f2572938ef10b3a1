"""``tender.bounds.check_json`` against a plain recursive reference, on generated JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tender.bounds import HttpLimits, check_json, is_json
from tender.errors import BodyRefused

LIMITS = HttpLimits(max_json_depth=6, max_number_chars=24)

# strings full of what the scanner must ignore inside them: brackets, digits, escaped quotes
tricky = st.text(alphabet='[]{}"\\0123456789e.-x ', max_size=30)
scalars = st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False) | tricky
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def longest_number(value: Any) -> int:
    if isinstance(value, list):
        return max((longest_number(v) for v in value), default=0)
    if isinstance(value, dict):
        return max((longest_number(v) for v in value.values()), default=0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return len(json.dumps(value))
    return 0


@settings(max_examples=300, derandomize=True, deadline=None)
@given(value=values)
def test_check_json_refuses_exactly_what_is_too_deep_or_too_long(value: Any) -> None:
    body = json.dumps(value).encode()
    too_deep = depth(value) > LIMITS.max_json_depth
    too_long = longest_number(value) > LIMITS.max_number_chars
    if not (too_deep or too_long):
        check_json(body, LIMITS)
        return
    with pytest.raises(BodyRefused) as refused:
        check_json(body, LIMITS)
    assert refused.value.status == 400
    assert refused.value.code == ("json_too_deep" if too_deep else "number_too_long")


def test_check_json_is_linear_on_100k_deep_bodies() -> None:
    with pytest.raises(BodyRefused, match="nested 100000 deep"):
        check_json(b"[" * 100_000 + b"]" * 100_000, HttpLimits())
    with pytest.raises(BodyRefused, match="401 characters"):
        check_json(b'{"a": ' + str(10**400).encode() + b"}", HttpLimits())


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/plain", False),
        ("application/jsonx", False),
        (None, False),
        ("", False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected
