"""Fixtures of the provider tests: the sample models, their specs and samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provider import ModelSpec, read_spec
from tender.paths import SAMPLE_MODELS


@pytest.fixture(scope="session")
def mlp_onnx() -> Path:
    return Path(SAMPLE_MODELS) / "mlp" / "model.onnx"


@pytest.fixture(scope="session")
def cnn_onnx() -> Path:
    return Path(SAMPLE_MODELS) / "cnn" / "model.onnx"


@pytest.fixture(scope="session")
def mlp_spec(mlp_onnx: Path) -> ModelSpec:
    return read_spec("mlp", mlp_onnx)


@pytest.fixture(scope="session")
def cnn_spec(cnn_onnx: Path) -> ModelSpec:
    return read_spec("cnn", cnn_onnx)


def samples(model: str) -> list[list[float]]:
    data: dict[str, Any] = json.loads((SAMPLE_MODELS / model / "samples.json").read_text())
    return [s["input"] for s in data["samples"]]


@pytest.fixture(scope="session")
def mlp_samples() -> list[list[float]]:
    return samples("mlp")


@pytest.fixture(scope="session")
def cnn_samples() -> list[list[float]]:
    return samples("cnn")


@pytest.fixture(scope="session")
def mlp_bundle() -> Any:
    """The MLP's EZKL bundle (built once, then cached under .cache/tender)."""
    from tender.models import build

    return build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")
