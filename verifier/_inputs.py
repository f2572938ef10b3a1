"""Fetch a job's input from its intent's ``inputLocation``.

``inputLocation`` is either the input itself (inline: JSON, ``[...]`` or ``{"input": [...]}``)
or a URI pointing at it (``https://``, ``http://``, ``file://``, ``data:``). Whatever is
fetched must hash to the intent's ``inputCommitment``; the caller checks that with
``tender.models.input_commitment``.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from verifier._errors import InputUnavailable

_URI_SCHEMES = (b"http://", b"https://", b"file://", b"data:")


@dataclass(frozen=True, slots=True)
class FetchedInput:
    """An input and where it came from (``"inline"`` or the URI)."""

    data: Any
    source: str

    @property
    def inline(self) -> bool:
        return self.source == "inline"


def is_uri(location: bytes) -> bool:
    return location.startswith(_URI_SCHEMES)


def parse_input(raw: bytes, *, source: str) -> Any:
    """The input held by ``raw`` JSON (a nested list of numbers, or ``{"input": ...}``)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputUnavailable(f"input at {source} is not JSON: {exc}") from exc
    if isinstance(value, dict):
        for key in ("input", "input_data"):
            if key in value:
                value = value[key]
                break
        else:
            raise InputUnavailable(f"input at {source} is a JSON object without an 'input' field")
    if (
        isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], list)
        and value[0]
        and isinstance(value[0][0], list)
    ):
        value = value[0]  # EZKL's input.json wraps each input in a list of inputs
    if not isinstance(value, list):
        raise InputUnavailable(f"input at {source} is not a list of numbers")
    return value


def inline_input(location: bytes) -> FetchedInput | None:
    """The input when ``location`` holds it inline, ``None`` when it is a URI or empty."""
    if not location or is_uri(location):
        return None
    return FetchedInput(parse_input(location, source="inline"), "inline")


def fetch_input(location: bytes, *, timeout: float = 10.0, max_bytes: int = 4 << 20) -> FetchedInput:
    """The input an ``inputLocation`` points at (or holds).

    Raises:
        InputUnavailable: the location is empty, unsupported, unreachable, too large, or not JSON.
    """
    if not location:
        raise InputUnavailable("the intent has no inputLocation")
    inline = inline_input(location)
    if inline is not None:
        return inline
    uri = location.decode("utf-8", errors="replace").strip()
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "data":
        header, _, payload = uri[5:].partition(",")
        raw = (
            base64.b64decode(payload)
            if header.endswith(";base64")
            else urllib.parse.unquote(payload).encode()
        )
    elif parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        try:
            if path.stat().st_size > max_bytes:
                raise InputUnavailable(f"input at {uri} is larger than {max_bytes} bytes")
            raw = path.read_bytes()
        except OSError as exc:
            raise InputUnavailable(f"cannot read {uri}: {exc}") from exc
    elif parsed.scheme in ("http", "https"):
        raw = _http_get(uri, timeout=timeout, max_bytes=max_bytes)
    else:  # pragma: no cover - is_uri() only lets the schemes above through
        raise InputUnavailable(f"unsupported inputLocation scheme {parsed.scheme!r}")
    return FetchedInput(parse_input(raw, source=uri), uri)


def _http_get(uri: str, *, timeout: float, max_bytes: int) -> bytes:
    try:
        with httpx.stream("GET", uri, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InputUnavailable(f"input at {uri} is larger than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise InputUnavailable(f"cannot fetch {uri}: {exc}") from exc
