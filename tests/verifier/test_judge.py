"""Re-execution verdicts on the real MLP: exact circuit outputs pass, anything else fails."""

from __future__ import annotations

import pytest

from tender.models import FIELD_MODULUS
from tests.harness.verifier import mlp_bundle, proof_of, samples
from verifier._models import Catalogue, judge, tolerance, witness_outputs

pytestmark = pytest.mark.slow


def test_honest_output_is_right_and_equals_the_proof() -> None:
    bundle, x = mlp_bundle(), samples()[0]
    honest = witness_outputs(bundle, x)
    assert honest == proof_of(0).output_felts  # the witness is what the proof exposes
    verdict = judge(bundle, x, honest)
    assert not verdict.wrong
    assert verdict.exact
    assert verdict.max_diff <= verdict.tolerance


def test_large_and_small_deviations_are_wrong() -> None:
    bundle, x = mlp_bundle(), samples()[0]
    honest = witness_outputs(bundle, x)
    scale = bundle.card.output_scale
    far = [(honest[0] + 10 * 2**scale) % FIELD_MODULUS, *honest[1:]]
    verdict = judge(bundle, x, far)
    assert verdict.wrong
    assert verdict.max_diff > tolerance(bundle.card)
    near = [(honest[0] + 1) % FIELD_MODULUS, *honest[1:]]  # one quantisation step: within tolerance
    verdict = judge(bundle, x, near)
    assert verdict.wrong
    assert "cannot be proven" in verdict.reason
    assert not judge(bundle, x, near, exact=False).wrong  # the tolerance alone would let it pass
    assert judge(bundle, x, honest[:-1]).wrong  # wrong length


def test_catalogue_finds_the_bundle_by_registry_hashes() -> None:
    card = mlp_bundle().card
    found = Catalogue().find("0x" + card.onnx_sha256, bytes.fromhex(card.settings_sha256))
    assert found is not None
    assert found.card.build_key == card.build_key
    assert Catalogue().find(b"\x00" * 32, b"\x00" * 32) is None
