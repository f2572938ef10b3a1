"""Token models on real onnxruntime: generation, streaming, batching, the KV cache, the audit.

``models/lm`` is the model Tender serves; ``models/lm-cheap`` is a smaller, differently seeded,
barely trained one: the cheaper model a cheating provider would swap in. "Another backend" is
the same ONNX file run with graph optimisations off and two threads.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tender.errors import ModelError
from tender.paths import SAMPLE_MODELS
from tender.tokens import (
    BpeTokenizer,
    Sampling,
    TextStream,
    TokenBatcher,
    TokenModel,
    TokenModelError,
    TokenRequest,
    audit,
    audit_deters,
    load_tokenizer,
    reexecute,
)

LM = SAMPLE_MODELS / "lm"
CHEAP = SAMPLE_MODELS / "lm-cheap"
PROMPTS = ("Return the", "The default is", "If the file", "Raise ValueError if")
SAMPLED = Sampling(temperature=0.8, top_k=40, seed=1234)


@pytest.fixture(scope="module")
def lm() -> TokenModel:
    return TokenModel.load(LM)


@pytest.fixture(scope="module")
def other_backend() -> TokenModel:
    return TokenModel.load(LM, optimization=ort.GraphOptimizationLevel.ORT_DISABLE_ALL, threads=2)


@pytest.fixture(scope="module")
def cheap() -> TokenModel:
    return TokenModel.load(CHEAP)


def request(
    model: TokenModel, text: str, max_tokens: int = 40, sampling: Sampling | None = None
) -> TokenRequest:
    return TokenRequest(tuple(model.encode(text)), max_tokens, sampling or Sampling())


# ---------------------------------------------------------------- the model files


def test_the_layout_is_read_from_the_graph(lm: TokenModel) -> None:
    config = json.loads((LM / "config.json").read_text())
    assert (lm.layout.layers, lm.layout.heads) == (config["n_layer"], config["n_head"])
    assert lm.layout.head_dim * lm.layout.heads == config["n_embd"]
    assert (lm.layout.mask, lm.layout.positions, lm.layout.dtype) == (True, True, np.float32)
    assert (lm.vocab_size, lm.eos_token_id, lm.n_positions) == (257, 256, config["n_positions"])
    meta = json.loads((LM / "meta.json").read_text())
    assert meta["kind"] == "tokens"
    assert (LM / "model.onnx").stat().st_size < 4_000_000


def test_the_model_learned_its_corpus(lm: TokenModel, cheap: TokenModel) -> None:
    """Teacher-forced loss on a docstring-like sentence: the trained model beats the cheap one."""
    text = lm.encode("Return a new list containing all items from the iterable in ascending order.")

    def loss(model: TokenModel) -> float:
        logits = model.logits(text)[:-1].astype(np.float64)
        logp = (
            logits
            - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
            - logits.max(1, keepdims=True)
        )
        return float(-logp[np.arange(len(text) - 1), text[1:]].mean())

    assert loss(lm) < 2.0 < loss(cheap)


def test_a_graph_without_a_kv_cache_is_refused(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_MODELS / "mlp" / "model.onnx", tmp_path / "model.onnx")
    shutil.copy(LM / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(TokenModelError, match="input_ids"):
        TokenModel.load(tmp_path)
    assert issubclass(TokenModelError, ModelError)


def test_a_folder_without_a_tokenizer_is_refused(tmp_path: Path) -> None:
    shutil.copy(LM / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(TokenModelError, match="no tokenizer"):
        TokenModel.load(tmp_path)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(TokenModelError, match="max_tokens"):
        TokenRequest((1, 2), 0)
    with pytest.raises(TokenModelError, match="prompt"):
        TokenRequest((), 4)
    with pytest.raises(TokenModelError, match="temperature"):
        Sampling(temperature=-1.0)
    with pytest.raises(TokenModelError, match="top_k"):
        Sampling(temperature=1.0, top_k=-3)


def test_a_request_longer_than_the_context_is_refused(lm: TokenModel) -> None:
    assert lm.n_positions is not None
    with pytest.raises(TokenModelError, match="context"):
        lm.generate(TokenRequest((1, 2, 3), lm.n_positions))


# ---------------------------------------------------------------- generation


def test_greedy_is_deterministic(lm: TokenModel) -> None:
    req = request(lm, PROMPTS[0])
    first = lm.generate(req)
    assert lm.generate(req) == first
    assert TokenModel.load(LM).generate(req).tokens == first.tokens
    assert len(first.tokens) == 40 or first.finish == "eos"


def test_seeded_sampling_is_deterministic_and_follows_the_seed(lm: TokenModel) -> None:
    req = request(lm, PROMPTS[1], sampling=SAMPLED)
    first = lm.generate(req)
    assert TokenModel.load(LM).generate(req).tokens == first.tokens
    others = {
        lm.generate(request(lm, PROMPTS[1], sampling=Sampling(0.8, 40, seed))).tokens for seed in range(4)
    }
    assert len(others | {first.tokens}) > 1
    assert first.tokens != lm.generate(request(lm, PROMPTS[1])).tokens  # not the greedy answer


def test_streaming_yields_the_tokens_of_the_full_call(lm: TokenModel) -> None:
    for sampling in (Sampling(), SAMPLED):
        req = request(lm, PROMPTS[2], sampling=sampling)
        assert tuple(lm.stream(req)) == lm.generate(req).tokens


def test_streamed_text_is_the_decoded_sequence(lm: TokenModel) -> None:
    req = request(lm, "Überprüfe", sampling=SAMPLED)
    stream = TextStream(lm.tokenizer)
    text = "".join(stream.push(t) for t in lm.stream(req)) + stream.flush()
    assert text == lm.decode(lm.generate(req).tokens)


def test_batched_greedy_gives_the_unbatched_tokens(lm: TokenModel) -> None:
    reqs = [request(lm, p, max_tokens=20 + 7 * i) for i, p in enumerate(PROMPTS)]
    batched = lm.generate_batch(reqs)
    assert [g.tokens for g in batched] == [lm.generate(r).tokens for r in reqs]
    assert [len(g.tokens) for g in batched] == [20, 27, 34, 41]


def test_generation_with_the_cache_matches_full_recomputation(lm: TokenModel) -> None:
    for sampling in (Sampling(), SAMPLED):
        req = request(lm, PROMPTS[3], sampling=sampling)
        assert lm.generate(req).tokens == lm.generate_without_cache(req).tokens


def test_the_batcher_batches_concurrent_requests_and_streams_their_tokens(lm: TokenModel) -> None:
    reqs = [request(lm, p, max_tokens=16) for p in PROMPTS]

    async def run() -> tuple[list[tuple[int, ...]], list[int]]:
        batcher = TokenBatcher(lm, max_batch=8, max_wait_ms=20)

        async def one(r: TokenRequest) -> tuple[int, ...]:
            return tuple([t async for t in batcher.stream(r)])

        try:
            return list(await asyncio.gather(*(one(r) for r in reqs))), batcher.batches
        finally:
            await batcher.close()

    tokens, batches = asyncio.run(run())
    assert tokens == [lm.generate(r).tokens for r in reqs]
    assert batches == [len(reqs)]


# ---------------------------------------------------------------- the re-execution audit


def test_reexecution_is_one_pass_over_prompt_and_delivery(lm: TokenModel) -> None:
    req = request(lm, PROMPTS[0], max_tokens=12)
    tokens = lm.generate(req).tokens
    logits = reexecute(lm, req.prompt, tokens)
    assert logits.shape == (12, lm.vocab_size)
    assert list(logits.argmax(axis=1)) == list(tokens)


@pytest.mark.parametrize("sampling", [Sampling(), SAMPLED, Sampling(temperature=1.3, seed=99)])
def test_an_honest_delivery_passes_on_another_backend(
    lm: TokenModel, other_backend: TokenModel, sampling: Sampling
) -> None:
    reqs = [request(lm, p, sampling=sampling) for p in PROMPTS]
    for delivered in [*lm.generate_batch(reqs), *(lm.generate(r) for r in reqs)]:
        verdict = audit(other_backend, delivered.request, delivered.tokens)
        assert verdict.accepted, verdict.reason
        assert len(verdict.gaps) == len(delivered.tokens)


def test_a_delivery_that_ends_with_eos_early_passes(lm: TokenModel, other_backend: TokenModel) -> None:
    runs = [request(lm, "Return True if the file exists.\n", 90, Sampling(0.8, 0, seed)) for seed in range(8)]
    ends = [g for g in lm.generate_batch(runs) if g.finish == "eos"]
    assert ends, "no run reached EOS within 90 tokens"
    for delivered in ends:
        assert len(delivered.tokens) < 90
        assert audit(other_backend, delivered.request, delivered.tokens).accepted


@pytest.mark.parametrize("sampling", [Sampling(), SAMPLED])
def test_a_swapped_model_is_caught(lm: TokenModel, cheap: TokenModel, sampling: Sampling) -> None:
    for text in PROMPTS:
        delivered = cheap.generate(request(cheap, text, sampling=sampling))
        verdict = audit(lm, delivered.request, delivered.tokens)
        assert not verdict.accepted
        assert verdict.step is not None
        assert "not what the model chooses" in verdict.reason


@pytest.mark.parametrize("sampling", [Sampling(), SAMPLED])
def test_an_altered_token_is_caught(lm: TokenModel, sampling: Sampling) -> None:
    req = request(lm, PROMPTS[0], sampling=sampling)
    tokens = list(lm.generate(req).tokens)
    worst = int(reexecute(lm, req.prompt, tokens)[5].argmin())
    tokens[5] = worst
    verdict = audit(lm, req, tokens)
    assert (verdict.accepted, verdict.step) == (False, 5)


def test_a_truncated_delivery_is_caught(lm: TokenModel) -> None:
    req = request(lm, PROMPTS[1])
    tokens = lm.generate(req).tokens
    assert tokens[-1] != lm.eos_token_id
    verdict = audit(lm, req, tokens[:-5])
    assert not verdict.accepted
    assert verdict.reason.startswith("truncated")
    assert not audit(lm, req, ()).accepted


def test_tokens_past_the_budget_or_after_eos_are_caught(lm: TokenModel) -> None:
    req = request(lm, PROMPTS[2], max_tokens=10)
    tokens = lm.generate(req).tokens
    assert not audit(lm, req, (*tokens, tokens[-1])).accepted
    assert lm.eos_token_id is not None
    after_eos = audit(lm, req, (*tokens[:3], lm.eos_token_id, *tokens[4:]))
    assert (after_eos.accepted, after_eos.reason) == (False, "tokens after EOS at step 3")
    assert not audit(lm, req, (*tokens[:-1], 10_000)).accepted


def test_the_economics_condition() -> None:
    # 5% audits, 10 units staked per job, price 1: cheating that saves 0.5 loses on average.
    assert audit_deters(audit_rate=0.05, stake_at_risk=10, price=1, cost_saved=0.5)
    assert not audit_deters(audit_rate=0.05, stake_at_risk=10, price=1, cost_saved=0.6)


# ---------------------------------------------------------------- tokenizers


def test_the_byte_tokenizer_round_trips_and_streams_split_characters(lm: TokenModel) -> None:
    text = "naïve → ok"
    ids = lm.encode(text, bos=False)
    assert ids == list(text.encode())
    assert lm.decode(ids) == text
    stream = TextStream(lm.tokenizer)
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) == text
    assert "" in pieces  # a split character waits for its last byte


def test_a_gpt2_bpe_tokenizer_loads_from_vocab_and_merges(tmp_path: Path) -> None:
    vocab = {"l": 0, "o": 1, "w": 2, "Ġ": 3, "lo": 4, "low": 5, "Ġlow": 6, "<|endoftext|>": 7, "e": 8, "r": 9}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nl o\nlo w\nĠ low\n")
    tokenizer = load_tokenizer(tmp_path)
    assert isinstance(tokenizer, BpeTokenizer)
    ids = tokenizer.encode("low lower")
    assert ids == [5, 6, 8, 9]
    assert b"".join(tokenizer.token_bytes(i) for i in ids) == b"low lower"
    assert tokenizer.eos_token_id == 7


# ---------------------------------------------------------------- the model kinds


def test_token_models_are_their_own_kind_and_are_not_built_into_circuits(tmp_path: Path) -> None:
    from tender.models import UnsupportedModel, build, model_kind

    assert (model_kind(LM), model_kind(CHEAP / "model.onnx")) == ("tokens", "tokens")
    assert (model_kind(SAMPLE_MODELS / "mlp"), model_kind(SAMPLE_MODELS / "cnn" / "model.onnx")) == (
        "classifier",
        "classifier",
    )
    calibration = tmp_path / "calibration.json"
    calibration.write_text('{"input_data": [[1.0]]}')
    with pytest.raises(UnsupportedModel, match="token model"):
        build(LM / "model.onnx", calibration, cache_dir=tmp_path)
