"""Re-execution audit of a delivered token sequence, and when audits deter cheating.

An auditor re-runs the registered model once, teacher-forced, over ``prompt + delivered`` (one
forward pass, no cache) and checks every delivered token against the logits it gets. Another
backend (thread count, graph optimisation, GPU kernels) gives logits that differ from the
provider's by at most ``tolerance`` per logit (``δ``); the rule accepts whatever some logits
within ``δ`` of the auditor's could have produced under the request's sampling rule:

- **greedy**: ``logit[token] >= max(logit) - 2δ`` (the provider's arg-max is within ``2δ`` of
  the auditor's best);
- **seeded sampling** (temperature ``T``, top-k): the step's uniform ``u`` is recomputed from the
  seed; the token must be a candidate (``logit[token] >= kth - 2δ``) and ``u`` must fall in its
  CDF interval (token-id order over the candidates within ``2δ`` of the k-th logit) widened by
  ``ε = (e^{4δ/T} - 1) + mass of the ambiguous boundary candidates``.

Before any logit: more tokens than the budget, tokens after EOS, ids outside the vocabulary and
**truncation** (fewer tokens than the budget without a final EOS) are refused outright.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tender.tokens._model import (
    Logits,
    Sampling,
    TokenModel,
    TokenRequest,
    candidates,
    probabilities,
    uniforms,
)

__all__ = ["DEFAULT_TOLERANCE", "Verdict", "audit", "audit_deters", "reexecute"]

#: Largest per-logit difference allowed between two honest backends (fp32 CPU/GPU, TF32 kernels).
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True, slots=True)
class Verdict:
    """The audit's answer.

    Attributes:
        accepted: whether the delivery passes.
        reason: ``"ok"`` or why it fails (``"truncated"``, ``"token 7 at step 3 ..."``).
        step: the first failing step (index into the delivered tokens), when one fails there.
        gaps: per checked step, ``best logit - delivered token's logit`` (0 for the arg-max).
        ranks: per checked step, the delivered token's rank among the re-executed logits (0 = best).
    """

    accepted: bool
    reason: str
    step: int | None = None
    gaps: tuple[float, ...] = ()
    ranks: tuple[int, ...] = ()


def reexecute(model: TokenModel, prompt: Sequence[int], tokens: Sequence[int]) -> Logits:
    """The logits ``[len(tokens), vocab]`` that predict each delivered token: one forward pass."""
    if not tokens:
        return np.zeros((0, 0), dtype=np.float32)
    full = model.logits([*prompt, *tokens[:-1]])
    return full[len(prompt) - 1 :]


def _structure(model: TokenModel, request: TokenRequest, tokens: Sequence[int], vocab: int) -> Verdict | None:
    eos = model.eos_token_id
    if len(tokens) > request.max_tokens:
        return Verdict(False, f"{len(tokens)} tokens delivered over a budget of {request.max_tokens}")
    for step, token in enumerate(tokens):
        if not 0 <= token < vocab:
            return Verdict(False, f"token {token} at step {step} is outside the vocabulary", step)
        if token == eos and step != len(tokens) - 1:
            return Verdict(False, f"tokens after EOS at step {step}", step + 1)
    if len(tokens) < request.max_tokens and (not tokens or tokens[-1] != eos):
        return Verdict(
            False, f"truncated: {len(tokens)} of {request.max_tokens} tokens and no EOS", len(tokens)
        )
    return None


def _sample_ok(logits: Logits, token: int, sampling: Sampling, u: float, tolerance: float) -> bool:
    spread = 2 * tolerance
    if sampling.top_k and sampling.top_k < logits.shape[-1]:
        kth = float(np.partition(logits, -sampling.top_k)[-sampling.top_k])
        upper = np.flatnonzero(logits >= kth - spread)
        ambiguous = np.abs(logits[upper] - kth) <= spread
    else:
        upper = candidates(logits, 0)
        ambiguous = np.zeros(len(upper), dtype=bool)
    where = np.flatnonzero(upper == token)
    if not len(where):
        return False
    probs = probabilities(logits, upper, sampling.temperature)
    lo = float(probs[: where[0]].sum())
    hi = lo + float(probs[where[0]])
    eps = math.expm1(min(2 * spread / sampling.temperature, 50.0)) + float(probs[ambiguous].sum())
    return lo - eps <= u <= hi + eps


def audit(
    model: TokenModel,
    request: TokenRequest,
    tokens: Sequence[int],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Verdict:
    """Judge a delivery of ``tokens`` for ``request`` by re-executing ``model`` (module docstring).

    Honest re-execution on another backend passes while its logits stay within ``tolerance`` of
    the provider's; a swapped model, altered tokens or a truncated sequence fails.
    """
    bad = _structure(model, request, tokens, model.vocab_size)
    if bad is not None:
        return bad
    logits = reexecute(model, request.prompt, tokens)
    rows = np.arange(len(tokens))
    chosen = logits[rows, np.asarray(tokens, dtype=np.int64)]
    gaps = logits.max(axis=1) - chosen
    ranks = (logits > chosen[:, None]).sum(axis=1)
    sampling = request.sampling
    draws = uniforms(sampling.seed, len(tokens)) if not sampling.greedy else None
    for step, token in enumerate(tokens):
        if draws is None:
            ok = bool(gaps[step] <= 2 * tolerance)
        else:
            ok = _sample_ok(logits[step], token, sampling, float(draws[step]), tolerance)
        if not ok:
            return Verdict(
                False,
                f"token {token} at step {step} is not what the model chooses "
                f"(logit {chosen[step]:.4f}, best {chosen[step] + gaps[step]:.4f}, rank {ranks[step]})",
                step,
                tuple(map(float, gaps)),
                tuple(map(int, ranks)),
            )
    return Verdict(True, "ok", None, tuple(map(float, gaps)), tuple(map(int, ranks)))


def audit_deters(*, audit_rate: float, stake_at_risk: float, price: float, cost_saved: float) -> bool:
    """Whether cheating loses money on average: ``audit_rate * (stake at risk + price) > cost saved``.

    A caught cheat forfeits the stake at risk and is not paid the price; an uncaught one saves
    ``cost_saved`` (the inference it skipped or cheapened). All in the same unit, per job.
    """
    return audit_rate * (stake_at_risk + price) > cost_saved
