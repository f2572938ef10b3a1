"""Train Tender's token model, a tiny GPT-2-style decoder, and export it to ONNX with a KV cache.

The text is the docstrings of a fixed list of standard-library modules, read from the source
files of the Python running this script (no download; the corpus sha256 goes into meta.json, so
a different Python gives a different, recorded corpus). The tokenizer is byte-level: ids 0..255
are the bytes of the UTF-8 text, 256 is ``<|endoftext|>`` (end of a docstring, and the EOS).

Writes, for each of ``lm`` (the model Tender serves) and ``lm-cheap`` (a smaller, differently
seeded, barely trained one: the "cheaper model" a cheating provider would swap in; tests use
it), the committed files under ``models/<name>/``:

- ``model.onnx``      GPT-2 export layout: inputs ``input_ids``, ``attention_mask``,
                      ``position_ids``, ``past_key_values.{i}.key/value`` ``[batch, heads,
                      past, head_dim]``; outputs ``logits`` and ``present.{i}.key/value``
- ``config.json``     GPT-2 style config (``n_positions``, ``n_layer``, ``eos_token_id``...)
- ``tokenizer.json``  the byte-level tokenizer
- ``meta.json``       kind ``tokens``, parameters, corpus, training time, held-out loss, hashes

Everything is seeded and single-threaded, so retraining on the same Python and torch gives the
same weights. Needs the ``train`` extra (torch)::

    .venv/bin/python scripts/train_token_model.py [--out models]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import random
import sys
import sysconfig
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

OPSET = 17
EOS = 256
VOCAB = 257
#: The modules whose docstrings are the corpus (pure-Python ones: their source ships).
MODULES = (
    "argparse", "ast", "base64", "bisect", "calendar", "collections", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "difflib", "enum", "fractions", "functools",
    "gettext", "glob", "gzip", "heapq", "hmac", "inspect", "ipaddress", "json", "logging",
    "numbers", "operator", "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random",
    "re", "shlex", "shutil", "smtplib", "socket", "statistics", "string", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "tokenize", "traceback", "typing",
    "unittest", "urllib", "uuid", "warnings", "weakref", "zipfile",
)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """One model to train."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    steps: int
    batch: int
    lr: float
    seed: int


SPECS = (
    Spec("lm", n_layer=2, n_embd=128, n_head=4, n_positions=128, steps=700, batch=24, lr=3e-3, seed=20260601),
    Spec("lm-cheap", n_layer=1, n_embd=64, n_head=2, n_positions=128, steps=60, batch=16, lr=3e-3, seed=7),
)


def corpus() -> str:
    """The docstrings of :data:`MODULES`, in order, each ended by the EOS marker text."""
    parts: list[str] = []
    for name in MODULES:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        path = stdlib / f"{name}.py" if (stdlib / f"{name}.py").exists() else stdlib / name / "__init__.py"
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40:
                    parts.append(doc)
    return "\x00".join(parts)  # placeholder separator, replaced by EOS ids in encode()


def encode(text: str) -> np.ndarray[Any, Any]:
    ids = [EOS if b == 0 else b for b in text.encode("utf-8")]
    return np.asarray(ids, dtype=np.int64)


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, c = x.shape
        hd = c // self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q = q.view(b, t, self.n_head, hd).transpose(1, 2)
        k = torch.cat([past_k, k.view(b, t, self.n_head, hd).transpose(1, 2)], dim=2)
        v = torch.cat([past_v, v.view(b, t, self.n_head, hd).transpose(1, 2)], dim=2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + bias
        y = torch.softmax(att, dim=-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        x = x + self.mlp(self.ln_2(x))
        return x, k, v


class Decoder(nn.Module):
    """GPT-2 style: learned positions, pre-LayerNorm blocks, tied input/output embedding."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec
        self.wte = nn.Embedding(VOCAB, spec.n_embd)
        self.wpe = nn.Embedding(spec.n_positions, spec.n_embd)
        self.h = nn.ModuleList(Block(spec.n_embd, spec.n_head) for _ in range(spec.n_layer))
        self.ln_f = nn.LayerNorm(spec.n_embd)
        for embedding in (self.wte, self.wpe):
            nn.init.normal_(embedding.weight, std=0.02)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        t = input_ids.shape[1]
        total = attention_mask.shape[1]
        # Query i sits at cache slot total - t + i; it sees the slots up to its own that the
        # attention mask keeps (left padding is masked out).
        slots = torch.arange(total).unsqueeze(0)
        queries = (torch.arange(t) + (total - t)).unsqueeze(1)
        keep = (slots <= queries).unsqueeze(0).unsqueeze(0) & (attention_mask[:, None, None, :] > 0)
        bias = (~keep).to(torch.float32) * -1e9
        x = self.wte(input_ids) + self.wpe(position_ids)
        presents: list[torch.Tensor] = []
        for i, block in enumerate(self.h):
            x, k, v = block(x, bias, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        logits = self.ln_f(x) @ self.wte.weight.T
        return (logits, *presents)

    def empty_past(self, batch: int) -> list[torch.Tensor]:
        hd = self.spec.n_embd // self.spec.n_head
        return [torch.zeros(batch, self.spec.n_head, 0, hd) for _ in range(2 * self.spec.n_layer)]

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        x, y = ids[:, :-1], ids[:, 1:]
        b, t = x.shape
        mask = torch.ones(b, t, dtype=torch.int64)
        pos = torch.arange(t).unsqueeze(0).expand(b, t)
        logits = self(x, mask, pos, *self.empty_past(b))[0]
        return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def windows(data: np.ndarray[Any, Any], starts: np.ndarray[Any, Any], length: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([data[s : s + length] for s in starts]))


def train(
    spec: Spec, data: np.ndarray[Any, Any], heldout: np.ndarray[Any, Any]
) -> tuple[Decoder, float, float]:
    seed_everything(spec.seed)
    model = Decoder(spec)
    rng = np.random.default_rng(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    length = spec.n_positions + 1
    started = time.process_time()
    for step in range(spec.steps):
        lr = spec.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / spec.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = windows(data, rng.integers(0, len(data) - length, spec.batch), length)
        optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            sys.stdout.write(f"  {spec.name} step {step}: loss {float(loss.detach()):.3f}\n")
    seconds = time.process_time() - started
    model.eval()
    eval_rng = np.random.default_rng(0)
    with torch.no_grad():
        held = float(model.loss(windows(heldout, eval_rng.integers(0, len(heldout) - length, 64), length)))
    return model, held, seconds


def export(model: Decoder, path: Path) -> None:
    spec = model.spec
    names_past = [f"past_key_values.{i}.{kv}" for i in range(spec.n_layer) for kv in ("key", "value")]
    names_present = [f"present.{i}.{kv}" for i in range(spec.n_layer) for kv in ("key", "value")]
    b, t, p = 2, 3, 4
    hd = spec.n_embd // spec.n_head
    dummy = (
        torch.zeros(b, t, dtype=torch.int64),
        torch.ones(b, p + t, dtype=torch.int64),
        torch.arange(p, p + t).unsqueeze(0).expand(b, t).contiguous(),
        *[torch.zeros(b, spec.n_head, p, hd) for _ in names_past],
    )
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    axes |= {n: {0: "batch_size", 2: "past_sequence_length"} for n in names_past}
    axes |= {n: {0: "batch_size", 2: "total_sequence_length"} for n in names_present}
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.onnx.export(
        model,
        dummy,
        str(path),
        input_names=["input_ids", "attention_mask", "position_ids", *names_past],
        output_names=["logits", *names_present],
        dynamic_axes=axes,
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    parser.add_argument("--only", choices=[s.name for s in SPECS], action="append")
    args = parser.parse_args(argv)
    text = corpus()
    data = encode(text)
    split = int(len(data) * 0.95)
    train_data, heldout = data[:split], data[split:]
    corpus_sha = hashlib.sha256(data.tobytes()).hexdigest()
    sys.stdout.write(f"corpus: {len(data):,} bytes from {len(MODULES)} modules, sha256 {corpus_sha[:16]}\n")
    for spec in SPECS:
        if args.only and spec.name not in args.only:
            continue
        model, held, seconds = train(spec, train_data, heldout)
        folder = args.out / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        export(model, folder / "model.onnx")
        write_json(
            folder / "config.json",
            {
                "model_type": "gpt2",
                "vocab_size": VOCAB,
                "n_positions": spec.n_positions,
                "n_embd": spec.n_embd,
                "n_layer": spec.n_layer,
                "n_head": spec.n_head,
                "bos_token_id": EOS,
                "eos_token_id": EOS,
            },
        )
        write_json(
            folder / "tokenizer.json",
            {"type": "bytes", "vocab_size": VOCAB, "eos_token": "<|endoftext|>", "eos_token_id": EOS},
        )
        params = sum(p.numel() for p in model.parameters())
        write_json(
            folder / "meta.json",
            {
                "name": spec.name,
                "kind": "tokens",
                "task": "next-byte prediction on Python standard-library docstrings",
                "architecture": Decoder.__doc__,
                "params": params,
                "spec": asdict(spec),
                "corpus": {
                    "modules": list(MODULES),
                    "python": sys.version.split()[0],
                    "tokens": len(data),
                    "sha256": corpus_sha,
                    "heldout": "last 5% of the token stream",
                },
                "heldout_loss_nats_per_byte": round(held, 4),
                "train_cpu_seconds": round(seconds, 1),
                "opset": OPSET,
                "onnx_sha256": hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest(),
                "torch": torch.__version__,
            },
        )
        sys.stdout.write(
            f"{spec.name}: {params:,} params, held-out loss {held:.3f} nats/byte, "
            f"{seconds:.0f} CPU-s -> {folder}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
