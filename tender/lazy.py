"""Names a package exports but imports on first use (they pull in web3, EZKL, onnxruntime...).

A package lists them with the module each lives in, and its ``__getattr__`` asks here::

    _LAZY = {"Client": "tender.client._client"}

    def __getattr__(name: str) -> Any:
        return lazy_attribute(__name__, name, _LAZY)
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, name: str, where: Mapping[str, str]) -> Any:
    """``name`` imported from its module in ``where``; ``AttributeError`` for a name not there."""
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
