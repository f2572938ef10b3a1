"""Where Tender keeps things: the repository, build artefacts and the cache."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding pyproject.toml).
ROOT = Path(__file__).resolve().parent.parent

#: Whether this ``tender`` runs from a checkout (editable install, PYTHONPATH) rather than an
#: installed wheel (``pip install tender``: ROOT is then the site-packages folder).
CHECKOUT = (ROOT / "pyproject.toml").is_file()

#: Foundry project and its build output.
CONTRACTS = ROOT / "contracts"
ARTIFACTS = CONTRACTS / "out"

#: Committed sample models (ONNX + calibration data).
SAMPLE_MODELS = ROOT / "models"


def cache_dir() -> Path:
    """The git-ignored cache (model bundles, proving keys, SRS, local deployments).

    ``TENDER_CACHE`` overrides the default ``<repo>/.cache/tender`` (for an installed wheel,
    ``$XDG_CACHE_HOME/tender`` or ``~/.cache/tender``).
    """
    default = ROOT / ".cache" / "tender"
    if not CHECKOUT:
        default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tender"
    path = Path(os.environ.get("TENDER_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_bin(name: str) -> Path:
    """A binary installed by npm into node_modules/.bin (anvil, forge, cast)."""
    return ROOT / "node_modules" / ".bin" / name
