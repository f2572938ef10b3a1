"""Train Tender's two sample models on scikit-learn's digits and export them to ONNX.

Writes, for each of ``mlp`` and ``cnn``, the committed files under ``models/<name>/``:

- ``model.onnx``        the network (opset 17, dynamic batch axis named ``batch_size``)
- ``calibration.json``  EZKL input-json with held-out samples (one flat list, batch 1 each)
- ``samples.json``      a few held-out inputs with their labels (tests and demo)
- ``meta.json``         held-out accuracy, the data split and the input preprocessing

The digits data set ships with scikit-learn (no download). Inputs are the 8x8 images as
floats ``pixel / 16`` in ``[0, 1]``. Everything is seeded, so retraining gives the same
weights and the same ONNX bytes. Needs the ``train`` extra (torch)::

    .venv/bin/python scripts/train_models.py [--out models]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 20240601
TEST_FRACTION = 0.25
CALIBRATION_SAMPLES = 32
DEMO_SAMPLES = 8
OPSET = 17


class Mlp(nn.Module):
    """64 -> 16 -> 10, ReLU: 1,210 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class Cnn(nn.Module):
    """1x8x8 -> conv 3x3 stride 2 (4 channels) -> ReLU -> linear 64 -> 10: 690 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        out: torch.Tensor = self.head(h.reshape(h.shape[0], -1))
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, seed: int
) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    batch = 64
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def export(model: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    dummy = torch.zeros((1, *shape), dtype=torch.float32)
    # The TorchScript exporter is deprecated but writes plain, small, deterministic graphs
    # that EZKL's tract front-end reads; the dynamo exporter needs onnxscript.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch_size"}, "logits": {0: "batch_size"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def rounded(values: np.ndarray[Any, Any]) -> list[float]:
    # pixel/16 is exact in binary; round only to keep the JSON short and stable.
    return [round(float(v), 6) for v in values.reshape(-1)]


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    args = parser.parse_args(argv)

    seed_everything(SEED)
    digits = load_digits()
    x_all = (digits.data / 16.0).astype(np.float32)
    y_all = digits.target.astype(np.int64)
    indices = np.arange(len(x_all))
    train_idx, test_idx = train_test_split(
        indices, test_size=TEST_FRACTION, random_state=SEED % (2**32), stratify=y_all
    )
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_test, y_test = x_all[test_idx], y_all[test_idx]
    calibration = x_test[:CALIBRATION_SAMPLES]
    demo = slice(CALIBRATION_SAMPLES, CALIBRATION_SAMPLES + DEMO_SAMPLES)

    specs: dict[str, tuple[nn.Module, tuple[int, ...], int, float]] = {
        "mlp": (Mlp(), (64,), 60, 1e-2),
        "cnn": (Cnn(), (1, 8, 8), 80, 1e-2),
    }
    results: dict[str, float] = {}
    for name, (model, shape, epochs, lr) in specs.items():
        torch.manual_seed(SEED)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.reset_parameters()
        xt = torch.from_numpy(x_train.reshape(-1, *shape))
        yt = torch.from_numpy(y_train)
        train(model, xt, yt, epochs=epochs, lr=lr, seed=SEED)
        acc = accuracy(model, torch.from_numpy(x_test.reshape(-1, *shape)), torch.from_numpy(y_test))
        results[name] = acc

        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        onnx_path = folder / "model.onnx"
        export(model, shape, onnx_path)
        write_json(folder / "calibration.json", {"input_data": [rounded(calibration)]})
        write_json(
            folder / "samples.json",
            {
                "input_shape": [1, *shape],
                "samples": [
                    {"input": rounded(x), "label": int(label), "test_index": int(i)}
                    for x, label, i in zip(x_test[demo], y_test[demo], test_idx[demo], strict=True)
                ],
            },
        )
        params = sum(p.numel() for p in model.parameters())
        write_json(
            folder / "meta.json",
            {
                "name": name,
                "task": "handwritten digit classification (10 classes, logits out)",
                "architecture": model.__doc__,
                "params": params,
                "dataset": "scikit-learn load_digits (1,797 8x8 images)",
                "split": {
                    "method": "sklearn train_test_split, stratified",
                    "test_fraction": TEST_FRACTION,
                    "random_state": SEED,
                    "train": len(train_idx),
                    "test": len(test_idx),
                    "calibration": f"first {CALIBRATION_SAMPLES} test samples",
                    "samples": f"test samples {demo.start}..{demo.stop - 1}",
                },
                "preprocessing": "pixel / 16 as float32 in [0, 1], row-major 8x8",
                "input_shape": [1, *shape],
                "output_shape": [1, 10],
                "heldout_accuracy": round(acc, 4),
                "opset": OPSET,
                "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
                "seed": SEED,
                "torch": torch.__version__,
            },
        )
        sys.stdout.write(f"{name}: {params} params, held-out accuracy {acc:.4f} -> {folder}\n")
    if results["mlp"] < 0.90:
        sys.stderr.write(f"MLP held-out accuracy {results['mlp']:.4f} is below 0.90\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
