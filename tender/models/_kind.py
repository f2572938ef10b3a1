"""What kind of work a model folder does, from its ``meta.json`` (``"kind"``).

- ``classifier`` (the default, and every model without the key): one input, logits out, built into
  an EZKL bundle and proven (this package);
- ``tokens``: a GPT-2-style decoder that generates tokens (``tender.tokens``), too large to prove,
  checked by re-execution (docs/PROTOCOL.md "Token models and re-execution audits").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

from tender.models._errors import BundleError

__all__ = ["KINDS", "ModelKind", "model_kind"]

ModelKind = Literal["classifier", "tokens"]
KINDS: tuple[ModelKind, ...] = get_args(ModelKind)


def model_kind(path: str | Path) -> ModelKind:
    """The kind of the model at ``path`` (its folder, or a file in it).

    Raises:
        BundleError: ``meta.json`` is unreadable or names a kind Tender does not know.
    """
    path = Path(path)
    meta = (path if path.is_dir() else path.parent) / "meta.json"
    if not meta.is_file():
        return "classifier"
    try:
        kind = json.loads(meta.read_text()).get("kind", "classifier")
    except (OSError, ValueError, AttributeError) as error:
        raise BundleError(f"{meta}: unreadable ({error})") from error
    if kind not in KINDS:
        raise BundleError(f"{meta}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind  # type: ignore[no-any-return]
