"""Errors of :mod:`tender.models`, all under :class:`tender.errors.ModelError`::

ModelError
├── BundleError            a bundle is missing, incomplete, or its build failed (or only a
│   │                      card was given where a polycommit commitment needs the vk and SRS)
│   ├── UnsupportedModel   the graph cannot become a Tender circuit (inputs, outputs, operators)
│   └── CircuitTooLarge    the circuit would exceed the size budget (``max_logrows``)
├── SrsError               the structured reference string is missing, too small or unreadable
│   └── InsecureSrsError   a dev-SRS bundle was offered to a non-local chain
├── InputError             an input does not fit the model (also a ValueError)
├── ProofError             witness generation, proving or verification could not run
├── ModelHashMismatch      an ONNX file is not the one the model card names
└── SolcError              the Solidity verifier did not compile
"""

from __future__ import annotations

from tender.errors import ModelError


class BundleError(ModelError):
    """A model bundle is missing, incomplete, inconsistent, or could not be built."""


class UnsupportedModel(BundleError):
    """The ONNX graph cannot become a Tender circuit: not one float input, a non-float output,
    outputs at different scales, or an operator or shape EZKL does not support."""


class CircuitTooLarge(BundleError):
    """The circuit would exceed the size budget (``max_logrows``); refused before any key is made."""


class SrsError(ModelError):
    """The structured reference string (KZG powers of tau) is missing, too small or unreadable."""


class InsecureSrsError(SrsError):
    """A bundle built on the locally generated development SRS was offered to a real chain."""


class InputError(ModelError, ValueError):
    """An input does not fit the model (wrong number of values, NaN or infinite values)."""


class ProofError(ModelError):
    """A witness or proof could not be produced, or a proof could not be read."""


class ModelHashMismatch(ModelError):
    """An ONNX file's sha256 is not the one recorded in the model card.

    Attributes:
        expected: the card's ``onnx_sha256``.
        actual: the sha256 of the file that was offered.
    """

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"ONNX sha256 {actual} differs from the model card's {expected}")


class SolcError(ModelError):
    """The Solidity compiler failed or reported errors."""
