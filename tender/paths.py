"""Where Tender keeps things: the repository, build artefacts and the cache."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding pyproject.toml).
ROOT = Path(__file__).resolve().parent.parent

#: Foundry project and its build output.
CONTRACTS = ROOT / "contracts"
ARTIFACTS = CONTRACTS / "out"

#: Committed sample models (ONNX + calibration data).
SAMPLE_MODELS = ROOT / "models"


def cache_dir() -> Path:
    """The git-ignored cache (model bundles, proving keys, SRS, local deployments).

    ``TENDER_CACHE`` overrides the default ``<repo>/.cache/tender``.
    """
    path = Path(os.environ.get("TENDER_CACHE", ROOT / ".cache" / "tender"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_bin(name: str) -> Path:
    """A binary installed by npm into node_modules/.bin (anvil, forge, cast)."""
    return ROOT / "node_modules" / ".bin" / name
