"""``tender model``: the CLI over real bundles, proofs and a real Anvil."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tender.anvil import DEV_KEYS, Anvil
from tender.models import Bundle, InsecureSrsError, cli_group, input_commitment
from tender.paths import SAMPLE_MODELS

pytestmark = pytest.mark.slow


def test_build_show_commit_prove_verify(bundles: dict[str, Bundle], tmp_path: Path) -> None:
    runner = CliRunner()
    mlp = SAMPLE_MODELS / "mlp"
    built = runner.invoke(
        cli_group, ["build", str(mlp / "model.onnx"), "--calibration", str(mlp / "calibration.json")]
    )
    assert built.exit_code == 0, built.output
    assert "insecure, development only" in built.output
    assert "polycommit" in built.output
    hashed = runner.invoke(
        cli_group,
        [
            "build",
            str(mlp / "model.onnx"),
            "--calibration",
            str(mlp / "calibration.json"),
            "--input-visibility",
            "hashed",
        ],
        env={"COLUMNS": "200"},
    )
    assert hashed.exit_code == 0, hashed.output
    assert "hashed: Poseidon(input) = instance 0" in hashed.output
    bundle = str(bundles["mlp"].path)
    shown = runner.invoke(cli_group, ["show", bundle, "--json"])
    assert json.loads(shown.output)["onnx_sha256"] == bundles["mlp"].card.onnx_sha256
    assert json.loads(shown.output)["input_visibility"] == "polycommit"
    panel = runner.invoke(cli_group, ["show", bundle], env={"COLUMNS": "200"})
    assert "polycommit: intent commitment = keccak256(proof[0:64])" in panel.output

    sample = json.loads((mlp / "samples.json").read_text())["samples"][4]
    (tmp_path / "x.json").write_text(json.dumps({"input": sample["input"]}))
    committed = runner.invoke(cli_group, ["commit", bundle, "--input", str(tmp_path / "x.json")])
    assert int(committed.output.strip(), 16) == input_commitment(bundles["mlp"], sample["input"])

    proof_path = tmp_path / "proof.json"
    proved = runner.invoke(
        cli_group, ["prove", bundle, "--input", str(tmp_path / "x.json"), "--out", str(proof_path)]
    )
    assert proved.exit_code == 0, proved.output
    assert runner.invoke(cli_group, ["verify", bundle, "--proof", str(proof_path)]).exit_code == 0
    verify_input = ["verify", bundle, "--proof", str(proof_path), "--input"]
    assert runner.invoke(cli_group, [*verify_input, str(tmp_path / "x.json")]).exit_code == 0
    other = json.loads((mlp / "samples.json").read_text())["samples"][5]
    (tmp_path / "y.json").write_text(json.dumps({"input": other["input"]}))
    refused = runner.invoke(cli_group, [*verify_input, str(tmp_path / "y.json")])
    assert refused.exit_code == 1
    assert "another input" in refused.output

    data: dict[str, Any] = json.loads(proof_path.read_text())
    assert int(data["input_commitment"], 16) == input_commitment(bundles["mlp"], sample["input"])
    data["output_felts"][0] = hex(int(data["output_felts"][0], 16) + 1)
    data["instances"][0] = data["output_felts"][0]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    assert runner.invoke(cli_group, ["verify", bundle, "--proof", str(tmp_path / "bad.json")]).exit_code == 1
    # the stated commitment must be the proof's own (keccak256 of its first point)
    data = json.loads(proof_path.read_text())
    data["input_commitment"] = hex(input_commitment(bundles["mlp"], other["input"]))
    (tmp_path / "rebound.json").write_text(json.dumps(data))
    assert (
        runner.invoke(cli_group, ["verify", bundle, "--proof", str(tmp_path / "rebound.json")]).exit_code == 1
    )

    listed = runner.invoke(cli_group, ["list"], env={"COLUMNS": "250"})
    assert "mlp" in listed.output
    assert "polycommit" in listed.output


def test_register_and_list_on_chain(
    bundles: dict[str, Bundle], chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tender.chain import deploy_artifact

    registry, _ = deploy_artifact(chain.sender, "ModelRegistry")
    monkeypatch.setenv("TENDER_PRIVATE_KEY", DEV_KEYS[2])
    runner = CliRunner()
    bundle = str(bundles["cnn"].path)
    args = ["register", bundle, "--rpc", chain.anvil.rpc_url, "--registry", registry]
    registered = runner.invoke(cli_group, args)
    assert registered.exit_code == 0, registered.output
    listed = runner.invoke(
        cli_group, ["list", "--rpc", chain.anvil.rpc_url, "--registry", registry], env={"COLUMNS": "250"}
    )
    assert listed.exit_code == 0, listed.output
    assert "cnn" in listed.output
    assert bundles["cnn"].card.onnx_sha256[:16] in listed.output
    assert "polycommit" in listed.output


def test_register_refuses_dev_srs_on_other_chains(
    bundles: dict[str, Bundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENDER_PRIVATE_KEY", DEV_KEYS[3])
    with Anvil(chain_id=11155111) as other:
        result = CliRunner().invoke(
            cli_group,
            ["register", str(bundles["mlp"].path), "--rpc", other.rpc_url, "--registry", "0x" + "11" * 20],
        )
    assert isinstance(result.exception, InsecureSrsError)
