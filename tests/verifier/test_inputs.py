"""inputLocation: inline JSON or a URI (file, data, http)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from verifier import InputUnavailable
from verifier._inputs import fetch_input, inline_input


def test_inline_json_list_and_object() -> None:
    assert inline_input(b"[[0.5, 1.0]]") is not None
    fetched = fetch_input(json.dumps({"input": [0.1, 0.2]}).encode())
    assert fetched.inline
    assert fetched.data == [0.1, 0.2]


def test_ezkl_style_input_data_is_unwrapped() -> None:
    fetched = fetch_input(json.dumps({"input_data": [[0.1, 0.2]]}).encode())
    assert fetched.data == [[0.1, 0.2]]


def test_uris(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[1, 2, 3]")
    assert fetch_input(f"file://{path}".encode()).data == [1, 2, 3]
    encoded = base64.b64encode(b"[4, 5]").decode()
    assert fetch_input(f"data:application/json;base64,{encoded}".encode()).data == [4, 5]
    assert inline_input(f"file://{path}".encode()) is None


@pytest.mark.parametrize("location", [b"", b"not json", b'{"x": 1}', b"file:///nonexistent/x.json"])
def test_unavailable(location: bytes) -> None:
    with pytest.raises(InputUnavailable):
        fetch_input(location)


def test_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(list(range(1000))))
    with pytest.raises(InputUnavailable, match="larger"):
        fetch_input(f"file://{path}".encode(), max_bytes=100)
