"""The token models' branch of Tender's exception tree::

ModelError (tender.errors)
└── TokenModelError      an ONNX export, tokenizer or generation request that cannot be served
"""

from __future__ import annotations

from tender.errors import ModelError

__all__ = ["TokenModelError"]


class TokenModelError(ModelError):
    """A token model's files are unusable, or a generation request does not fit the model."""
