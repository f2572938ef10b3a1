"""Token models: GPT-2-style ONNX decoders with a KV cache, generation and re-execution audits.

Needs the provider or verifier extra (onnxruntime, numpy); the light SDK never imports it::

    from tender.tokens import Sampling, TokenModel, TokenRequest, audit

    model = TokenModel.load("models/lm")                 # model.onnx, tokenizer.json, config.json
    request = TokenRequest(tuple(model.encode("Return the")), max_tokens=48,
                           sampling=Sampling(temperature=0.8, top_k=40, seed=7))
    for token in model.stream(request): ...              # tokens as they are made
    done = model.generate_batch([request, other])        # micro-batched, same tokens
    verdict = audit(other_backend_model, request, done[0].tokens)   # re-execution
    assert verdict.accepted

The model Tender ships is ``models/lm`` (``scripts/train_token_model.py``, ``make models``);
any GPT-2-style export (``past_key_values.{i}.key/value`` in, ``present.{i}.*`` out, GPT-2's
``vocab.json`` + ``merges.txt``) loads the same way. docs/PROTOCOL.md "Token models" has the
acceptance rule and the economics.
"""

from __future__ import annotations

from tender.tokens._audit import DEFAULT_TOLERANCE, Verdict, audit, audit_deters, reexecute
from tender.tokens._batcher import TokenBatcher
from tender.tokens._errors import TokenModelError
from tender.tokens._model import Generation, Sampling, TokenModel, TokenRequest, pick, uniforms
from tender.tokens._tokenizer import BpeTokenizer, ByteTokenizer, TextStream, load_tokenizer

__all__ = [
    "DEFAULT_TOLERANCE",
    "BpeTokenizer",
    "ByteTokenizer",
    "Generation",
    "Sampling",
    "TextStream",
    "TokenBatcher",
    "TokenModel",
    "TokenModelError",
    "TokenRequest",
    "Verdict",
    "audit",
    "audit_deters",
    "load_tokenizer",
    "pick",
    "reexecute",
    "uniforms",
]
