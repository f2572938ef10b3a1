"""A GPT-2-style ONNX decoder with a KV cache, run by onnxruntime: forward passes and generation.

The layout is read from the graph: ``input_ids`` (required), ``attention_mask`` and
``position_ids`` (used when present), ``past_key_values.{i}.key/value`` ``[batch, heads, past,
head_dim]`` in, ``logits`` ``[batch, seq, vocab]`` and ``present.{i}.key/value`` out. Heads and
head size come from the graph's static dimensions, else from ``config.json`` (``n_head``,
``n_embd``), which also gives ``n_positions`` and ``eos_token_id`` when present.

Generation steps several requests together (left padding, attention mask, per-row positions);
rows leave the batch when they end (EOS or budget). Greedy picks the arg-max; sampling draws
one uniform per step from ``numpy.random.default_rng(seed)`` and inverts the CDF of the
temperature-scaled softmax over the top-k candidates taken in token-id order
(:func:`pick`), so the audit can recompute every draw from the seed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from tender.tokens._errors import TokenModelError
from tender.tokens._tokenizer import BpeTokenizer, ByteTokenizer, load_tokenizer

__all__ = ["Generation", "Sampling", "TokenModel", "TokenRequest", "pick", "uniforms"]

_PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_DTYPES: dict[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
Logits = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Sampling:
    """How each token is chosen: ``temperature == 0`` is greedy; else seeded sampling.

    Attributes:
        temperature: softmax temperature; 0 picks the arg-max (the seed is then unused).
        top_k: sample among the k highest logits (ties at the k-th included); 0: all tokens.
        seed: seeds the per-request generator of uniforms (one draw per generated token).
    """

    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not np.isfinite(self.temperature):
            raise TokenModelError(f"temperature must be a finite number >= 0, not {self.temperature}")
        if self.top_k < 0:
            raise TokenModelError(f"top_k must be >= 0, not {self.top_k}")
        if not 0 <= self.seed < 2**64:
            raise TokenModelError(f"seed must be in [0, 2**64), not {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One generation job: a prompt (token ids), a token budget and a sampling rule."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self) -> None:
        if not self.prompt:
            raise TokenModelError("prompt must hold at least one token")
        if self.max_tokens < 1:
            raise TokenModelError(f"max_tokens must be >= 1, not {self.max_tokens}")


@dataclass(frozen=True, slots=True)
class Generation:
    """What a provider delivers for a request: the tokens made, EOS included when reached."""

    request: TokenRequest
    tokens: tuple[int, ...]
    finish: Literal["eos", "budget"]


def uniforms(seed: int, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The first ``n`` uniforms in [0, 1) a request seeded ``seed`` draws, one per token."""
    return np.random.default_rng(seed).random(n)


def candidates(logits: Logits, top_k: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The ids sampling may choose, ascending: the top ``top_k`` logits (ties kept), or all."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return np.arange(logits.shape[-1], dtype=np.int64)
    kth = np.partition(logits, -top_k)[-top_k]
    return np.flatnonzero(logits >= kth).astype(np.int64)


def probabilities(logits: Logits, ids: np.ndarray[Any, Any], temperature: float) -> np.ndarray[Any, Any]:
    """Softmax of ``logits[ids] / temperature`` in float64."""
    scaled = logits[ids].astype(np.float64) / temperature
    weights = np.exp(scaled - scaled.max())
    out: np.ndarray[Any, Any] = weights / weights.sum()
    return out


def pick(logits: Logits, sampling: Sampling, u: float) -> int:
    """The token ``sampling`` chooses from one step's ``logits`` given its uniform ``u``."""
    if sampling.greedy:
        return int(np.argmax(logits))
    ids = candidates(logits, sampling.top_k)
    cdf = np.cumsum(probabilities(logits, ids, sampling.temperature))
    return int(ids[min(int(np.searchsorted(cdf, u, side="right")), len(ids) - 1)])


@dataclass(frozen=True, slots=True)
class _Layout:
    layers: int
    heads: int
    head_dim: int
    dtype: type[np.floating[Any]]
    mask: bool
    positions: bool


class TokenModel:
    """A token model folder (``model.onnx`` + tokenizer files [+ ``config.json``]) ready to run.

    Example::

        model = TokenModel.load("models/lm")
        request = TokenRequest(tuple(model.encode("Return the")), max_tokens=32)
        print(model.decode(model.generate(request).tokens))
        for token in model.stream(request): ...
    """

    def __init__(
        self,
        onnx_path: Path,
        tokenizer: ByteTokenizer | BpeTokenizer,
        config: dict[str, Any],
        *,
        threads: int = 1,
        optimization: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = optimization
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=list(providers))
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise TokenModelError(f"{onnx_path}: onnxruntime cannot load it ({error})") from error
        self.path = onnx_path
        self.tokenizer = tokenizer
        self.config = config
        self.layout = self._discover(config)
        eos = config.get("eos_token_id", tokenizer.eos_token_id)
        self.eos_token_id: int | None = None if eos is None else int(eos)
        width = next(o for o in self.session.get_outputs() if o.name == "logits").shape[-1]
        vocab = width if isinstance(width, int) else config.get("vocab_size")
        if vocab is None:
            raise TokenModelError(
                f"{onnx_path}: the logits' vocabulary axis is symbolic and config.json lacks vocab_size"
            )
        self.vocab_size = int(vocab)
        positions = config.get("n_positions")
        self.n_positions: int | None = None if positions is None else int(positions)

    @classmethod
    def load(cls, folder: str | Path, **options: Any) -> TokenModel:
        """Open a model folder; ``options`` go to the constructor (``threads``, ``optimization``).

        Raises:
            TokenModelError: no ``model.onnx``, no tokenizer, or a graph without the GPT-2 layout.
        """
        folder = Path(folder)
        onnx_path = folder / "model.onnx"
        if not onnx_path.is_file():
            raise TokenModelError(f"{folder}: no model.onnx")
        config_path = folder / "config.json"
        try:
            config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        except (OSError, ValueError) as error:
            raise TokenModelError(f"{config_path}: unreadable ({error})") from error
        return cls(onnx_path, load_tokenizer(folder), config, **options)

    def _discover(self, config: dict[str, Any]) -> _Layout:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if "input_ids" not in inputs or "logits" not in outputs:
            raise TokenModelError(f"{self.path}: a GPT-2 export needs an input_ids input and a logits output")
        past = sorted((int(m[1]), m[2]) for m in map(_PAST.match, inputs) if m)
        layers = len(past) // 2
        if not layers or past != [(i, kv) for i in range(layers) for kv in ("key", "value")]:
            raise TokenModelError(f"{self.path}: no past_key_values.{{i}}.key/value inputs for layers 0..n-1")
        missing = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
        missing = [name for name in missing if name not in outputs]
        if missing:
            raise TokenModelError(f"{self.path}: outputs lack {', '.join(missing)}")
        first = inputs["past_key_values.0.key"]
        shape = list(first.shape)
        heads = shape[1] if isinstance(shape[1], int) else config.get("n_head")
        head_dim = shape[3] if isinstance(shape[3], int) else None
        if head_dim is None and heads and config.get("n_embd"):
            head_dim = int(config["n_embd"]) // int(heads)
        if not heads or not head_dim:
            raise TokenModelError(
                f"{self.path}: KV-cache heads/head size are symbolic and config.json lacks them"
            )
        if first.type not in _DTYPES:
            raise TokenModelError(f"{self.path}: KV cache of type {first.type} is not supported")
        return _Layout(
            layers=layers,
            heads=int(heads),
            head_dim=int(head_dim),
            dtype=_DTYPES[first.type],
            mask="attention_mask" in inputs,
            positions="position_ids" in inputs,
        )

    # ------------------------------------------------------------------ text

    def encode(self, text: str, *, bos: bool = True) -> list[int]:
        """``text`` as ids, after the EOS id (the start-of-text marker of GPT-2 models) if ``bos``."""
        ids = self.tokenizer.encode(text)
        return [self.eos_token_id, *ids] if bos and self.eos_token_id is not None else ids

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.tokenizer.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ forward passes

    def empty_past(self, batch: int) -> list[np.ndarray[Any, Any]]:
        shape = (batch, self.layout.heads, 0, self.layout.head_dim)
        return [np.zeros(shape, dtype=self.layout.dtype) for _ in range(2 * self.layout.layers)]

    def forward(
        self,
        input_ids: np.ndarray[Any, Any],
        attention_mask: np.ndarray[Any, Any],
        position_ids: np.ndarray[Any, Any],
        past: Sequence[np.ndarray[Any, Any]],
    ) -> tuple[Logits, list[np.ndarray[Any, Any]]]:
        """One run of the graph: logits ``[batch, seq, vocab]`` (float32) and the new cache."""
        feed: dict[str, np.ndarray[Any, Any]] = {"input_ids": input_ids.astype(np.int64)}
        if self.layout.mask:
            feed["attention_mask"] = attention_mask.astype(np.int64)
        if self.layout.positions:
            feed["position_ids"] = position_ids.astype(np.int64)
        for i in range(self.layout.layers):
            feed[f"past_key_values.{i}.key"] = past[2 * i]
            feed[f"past_key_values.{i}.value"] = past[2 * i + 1]
        names = [
            "logits",
            *(f"present.{i}.{kv}" for i in range(self.layout.layers) for kv in ("key", "value")),
        ]
        logits, *present = self.session.run(names, feed)
        return np.asarray(logits, dtype=np.float32), list(present)

    def logits(self, ids: Sequence[int]) -> Logits:
        """Teacher-forced logits ``[len(ids), vocab]`` of one sequence, one pass, no cache."""
        self._check_length(len(ids))
        row = np.asarray([ids], dtype=np.int64)
        logits, _ = self.forward(row, np.ones_like(row), np.arange(len(ids))[None, :], self.empty_past(1))
        out: Logits = logits[0]
        return out

    def _check_length(self, length: int) -> None:
        if self.n_positions is not None and length > self.n_positions:
            raise TokenModelError(
                f"prompt + max_tokens = {length} exceeds the model's context of {self.n_positions}"
            )

    # ------------------------------------------------------------------ generation

    def steps(self, requests: Sequence[TokenRequest]) -> Iterator[tuple[int, int]]:
        """Generate for ``requests`` stepped together; yields ``(request index, token)`` as made.

        Each step runs the rows still going as one batch; a row ends after EOS or its budget.
        """
        for request in requests:
            self._check_length(len(request.prompt) + request.max_tokens)
        if not requests:
            return
        width = max(len(r.prompt) for r in requests)
        ids = np.zeros((len(requests), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, request in enumerate(requests):
            ids[row, width - len(request.prompt) :] = request.prompt
            mask[row, width - len(request.prompt) :] = 1
        positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
        draws = [uniforms(r.sampling.seed, r.max_tokens) if not r.sampling.greedy else None for r in requests]
        made = [0] * len(requests)
        active = list(range(len(requests)))
        logits, past = self.forward(ids, mask, positions, self.empty_past(len(requests)))
        last = logits[:, -1, :]
        next_position = positions[:, -1] + 1
        while True:
            chosen: list[int] = []
            keep: list[int] = []
            for slot, row in enumerate(active):
                request, draw = requests[row], draws[row]
                token = pick(last[slot], request.sampling, 0.0 if draw is None else float(draw[made[row]]))
                made[row] += 1
                yield row, token
                if made[row] < request.max_tokens and token != self.eos_token_id:
                    keep.append(slot)
                    chosen.append(token)
            if not keep:
                return
            if len(keep) < len(active):
                index = np.asarray(keep)
                past = [p[index] for p in past]
                mask, next_position = mask[index], next_position[index]
                active = [active[slot] for slot in keep]
            mask = np.concatenate([mask, np.ones((len(active), 1), dtype=np.int64)], axis=1)
            step_ids = np.asarray(chosen, dtype=np.int64)[:, None]
            logits, past = self.forward(step_ids, mask, next_position[:, None], past)
            last = logits[:, -1, :]
            next_position = next_position + 1

    def generate_batch(self, requests: Sequence[TokenRequest]) -> list[Generation]:
        """Every request's generation, micro-batched (same tokens as one at a time under greedy)."""
        tokens: list[list[int]] = [[] for _ in requests]
        for row, token in self.steps(requests):
            tokens[row].append(token)
        return [self._generation(r, t) for r, t in zip(requests, tokens, strict=True)]

    def generate(self, request: TokenRequest) -> Generation:
        return self.generate_batch([request])[0]

    def stream(self, request: TokenRequest) -> Iterator[int]:
        """The request's tokens, one at a time as each is made."""
        for _, token in self.steps([request]):
            yield token

    def generate_without_cache(self, request: TokenRequest) -> Generation:
        """The same generation recomputing the whole sequence each step (no KV cache): a check."""
        self._check_length(len(request.prompt) + request.max_tokens)
        ids = list(request.prompt)
        draw = None if request.sampling.greedy else uniforms(request.sampling.seed, request.max_tokens)
        tokens: list[int] = []
        while len(tokens) < request.max_tokens and (not tokens or tokens[-1] != self.eos_token_id):
            u = 0.0 if draw is None else float(draw[len(tokens)])
            tokens.append(pick(self.logits(ids + tokens)[-1], request.sampling, u))
        return self._generation(request, tokens)

    def _generation(self, request: TokenRequest, tokens: list[int]) -> Generation:
        finish: Literal["eos", "budget"] = "eos" if tokens and tokens[-1] == self.eos_token_id else "budget"
        return Generation(request, tuple(tokens), finish)
