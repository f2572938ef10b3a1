"""The light SDK commits to inputs without EZKL (``tender.commit``): the same commitment as
EZKL's, for the sample models, on real bundles; quantization exactly as EZKL rounds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tender.commit import BASIS_FILE, CommitBasis, light_input_commitment, quantize_f32
from tender.errors import ModelError
from tender.models import Bundle, ensure_commit_basis, felt_from_hex, input_commitment
from tender.models._ezkl import ezkl
from tender.models._felt import FIELD_MODULUS
from tests.test_packaging import _light


def test_quantization_rounds_as_ezkl_does() -> None:
    rng = random.Random(7)
    values = [rng.uniform(-3, 3) for _ in range(2_000)]
    values += [k / 2 / 2**7 for k in range(-400, 400)]  # exact halves at scale 7: rounding direction
    values += [0.0, -0.0, 1e-9, -1e-9, 12.3456789]
    for scale in (0, 7, 13):
        expected = []
        for v in values:
            felt = felt_from_hex(ezkl.float_to_felt(v, scale, ezkl.PyInputType.F32))
            expected.append(felt - FIELD_MODULUS if felt > FIELD_MODULUS // 2 else felt)
        assert quantize_f32(values, scale) == expected


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_light_commitment_equals_ezkls(
    bundles: dict[str, Bundle], samples: dict[str, Any], name: str
) -> None:
    bundle = bundles[name]
    assert (bundle.path / BASIS_FILE).is_file()  # build() writes it
    inputs = [s["input"] for s in samples[name][:3]]
    rng = random.Random(11)
    inputs.append([rng.uniform(-1.5, 1.5) for _ in range(bundle.card.input_size)])
    for data in inputs:
        assert light_input_commitment(bundle.path, data) == input_commitment(bundle, data)


def test_a_missing_basis_is_written_and_a_wrong_one_never_matches(
    bundles: dict[str, Bundle], samples: dict[str, Any], tmp_path: Any
) -> None:
    bundle = bundles["mlp"]
    basis = CommitBasis.load(bundle.path)
    data = samples["mlp"][0]["input"]
    # a tampered basis (two steps swapped) gives another commitment: the market would refuse it
    tampered = CommitBasis(basis.origin, (basis.steps[1], basis.steps[0], *basis.steps[2:]))
    values = quantize_f32(
        [0.25, 0.75, *data[2:]] if isinstance(data[0], float) else [0.25, 0.75] + [0.0] * 62, 7
    )
    assert tampered.commit(values) != basis.commit(values)
    # ensure_commit_basis writes a basis that is missing, checked against EZKL
    (bundle.path / BASIS_FILE).rename(tmp_path / "saved.json")
    try:
        written = ensure_commit_basis(bundle)
        assert written is not None
        assert json.loads(written.read_text()) == json.loads((tmp_path / "saved.json").read_text())
    finally:
        (tmp_path / "saved.json").replace(bundle.path / BASIS_FILE)


def test_light_commitment_refuses_bad_input(bundles: dict[str, Bundle]) -> None:
    with pytest.raises(ModelError, match="takes 64"):
        light_input_commitment(bundles["mlp"].path, [0.0] * 63)
    with pytest.raises(ModelError, match="NaN"):
        light_input_commitment(bundles["mlp"].path, [float("nan")] * 64)


def test_a_process_without_ezkl_or_numpy_commits_the_same(
    bundles: dict[str, Bundle], samples: dict[str, Any]
) -> None:
    bundle = bundles["mlp"]
    data = samples["mlp"][1]["input"]
    code = (
        "import sys, json; from tender.client._models import load_bundle, ModelHandle;"
        f"b = load_bundle(__import__('pathlib').Path({str(bundle.path)!r}));"
        "h = ModelHandle(name='mlp', model_id=b'\\x00' * 32, bundle=b);"
        f"print(h.commitment(json.loads({json.dumps(json.dumps(data))})), h.can_verify,"
        " 'numpy' in sys.modules or 'ezkl' in sys.modules)"
    )
    done = _light("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(input_commitment(bundle, data)), "False", "False"]
