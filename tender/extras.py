"""The optional parts of Tender: which pip extra brings which modules.

``pip install tender`` is the light requester SDK and CLI (chain access, intents, the client).
Everything heavier is an extra of ``pyproject.toml``; this module is the one place that knows
which importable modules each extra brings, so the CLI can tell a missing extra from a bug::

    from tender.extras import missing, require

    missing("devnet")            # () when installed, else the modules that are absent
    require("devnet", "tender devnet")   # raises MissingExtra naming the extra
"""

from __future__ import annotations

import importlib.util

from tender.errors import MissingExtra

__all__ = ["EXTRAS", "extra_of", "installed", "missing", "require"]

#: Extra -> the top-level modules it brings (import names, not distribution names). Mirrors
#: ``[project.optional-dependencies]`` (tests/test_packaging.py checks the two agree).
_ZK = ("ezkl", "numpy")
_PROVIDER = (*_ZK, "onnxruntime", "onnx", "fastapi", "uvicorn", "httptools", "prometheus_client")
_SOLVER = ("numpy", "prometheus_client")
_VERIFIER = (*_ZK, "onnxruntime", "onnx", "prometheus_client")
EXTRAS: dict[str, tuple[str, ...]] = {
    "zk": _ZK,
    "provider": _PROVIDER,
    "solver": _SOLVER,
    "verifier": _VERIFIER,
    "devnet": (*dict.fromkeys((*_PROVIDER, *_SOLVER, *_VERIFIER)), "matplotlib"),
    "ape": ("ape", "ape_solidity", "ape_foundry"),
    "train": ("torch",),
}


def installed(module: str) -> bool:
    """Whether the top-level ``module`` can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that are not installed (empty when the extra is)."""
    return tuple(module for module in EXTRAS[extra] if not installed(module))


def require(extra: str, what: str) -> None:
    """Raise :class:`~tender.errors.MissingExtra` unless ``extra`` is installed.

    Args:
        extra: a key of :data:`EXTRAS`.
        what: what needs it, for the message (``"tender devnet"``).
    """
    if missing(extra):
        raise MissingExtra(what, extra)


def extra_of(module: str) -> str | None:
    """The smallest extra that brings the top-level ``module`` (``None``: not an extra's)."""
    root = module.split(".")[0]
    owners = [extra for extra, modules in EXTRAS.items() if root in modules]
    return min(owners, key=lambda extra: len(EXTRAS[extra])) if owners else None
