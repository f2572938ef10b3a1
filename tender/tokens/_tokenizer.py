"""Tokenizers of token models: Tender's byte-level one and GPT-2's byte-level BPE.

A model folder holds either ``tokenizer.json`` with ``"type": "bytes"`` (Tender's models: ids
0..255 are UTF-8 bytes, ``eos_token_id`` the end of text) or GPT-2's ``vocab.json`` +
``merges.txt``. Both map text to ids and ids back to bytes; :class:`TextStream` turns a stream of
ids into text without splitting a multi-byte character.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Protocol

from tender.tokens._errors import TokenModelError

__all__ = ["BpeTokenizer", "ByteTokenizer", "TextStream", "Tokenizer", "load_tokenizer"]


class Tokenizer(Protocol):
    """What generation needs from a tokenizer."""

    @property
    def eos_token_id(self) -> int | None: ...

    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, token: int) -> bytes: ...


def decode(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """The text of ``ids`` (the EOS id and bytes that are not UTF-8 become nothing / U+FFFD)."""
    return b"".join(tokenizer.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


class TextStream:
    """Incremental decoding: feed ids one at a time, get the text they complete."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return str(self._decoder.decode(self._tokenizer.token_bytes(token)))

    def flush(self) -> str:
        return str(self._decoder.decode(b"", final=True))


class ByteTokenizer:
    """Tender's tokenizer: one id per UTF-8 byte, plus an end-of-text id."""

    def __init__(self, *, vocab_size: int, eos_token_id: int) -> None:
        if not 256 <= eos_token_id < vocab_size:
            raise TokenModelError(f"tokenizer.json: eos_token_id {eos_token_id} not in [256, {vocab_size})")
        self.vocab_size = vocab_size
        self._eos = eos_token_id

    @property
    def eos_token_id(self) -> int | None:
        return self._eos

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def token_bytes(self, token: int) -> bytes:
        return bytes([token]) if 0 <= token < 256 else b""


@cache
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


#: GPT-2's pre-tokenisation pattern, with ``\p{L}``/``\p{N}`` approximated by ``re`` classes.
_PRETOKEN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


class BpeTokenizer:
    """GPT-2's byte-level BPE from ``vocab.json`` and ``merges.txt``."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, eos_token: str) -> None:
        self._vocab = vocab
        self._ranks = {pair: i for i, pair in enumerate(merges)}
        self._unicode = _byte_to_unicode()
        self._bytes_of = {v: k for k, v in self._unicode.items()}
        self._decoder = {i: t for t, i in vocab.items()}
        self._eos = vocab.get(eos_token)
        self._cache: dict[str, list[str]] = {}

    @property
    def eos_token_id(self) -> int | None:
        return self._eos

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = [
                (self._ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(itertools.pairwise(parts))
            ]
            rank, i = min(pairs)
            if rank == 1 << 60:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _PRETOKEN.findall(text):
            word = "".join(self._unicode[b] for b in piece.encode("utf-8"))
            try:
                ids += [self._vocab[part] for part in self._bpe(word)]
            except KeyError as missing:
                raise TokenModelError(f"vocab.json has no token {missing}") from None
        return ids

    def token_bytes(self, token: int) -> bytes:
        if token == self._eos or token not in self._decoder:
            return b""
        return bytes(self._bytes_of[c] for c in self._decoder[token])


def load_tokenizer(folder: Path) -> ByteTokenizer | BpeTokenizer:
    """The tokenizer stored in ``folder`` (``tokenizer.json`` of type bytes, or vocab + merges).

    Raises:
        TokenModelError: no tokenizer files, or unreadable ones.
    """
    try:
        if (folder / "tokenizer.json").is_file():
            spec = json.loads((folder / "tokenizer.json").read_text())
            if spec.get("type") == "bytes":
                return ByteTokenizer(
                    vocab_size=int(spec["vocab_size"]), eos_token_id=int(spec["eos_token_id"])
                )
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
            merges = [
                (a, b) for a, b in (line.split() for line in lines if line and not line.startswith("#"))
            ]
            return BpeTokenizer(vocab, merges, eos_token="<|endoftext|>")
    except (OSError, ValueError, KeyError) as error:
        raise TokenModelError(f"{folder}: unreadable tokenizer files ({error})") from error
    raise TokenModelError(
        f"{folder}: no tokenizer (tokenizer.json of type bytes, or vocab.json + merges.txt)"
    )
