"""The ``tender provider`` commands and the ``[provider]`` config section."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provider import ProviderSection, load_config
from provider.cli import _misbehave, group
from tender.config import parse_section
from tender.errors import ChainError, ConfigError
from tender.paths import ROOT


def test_example_config_loads() -> None:
    chain, config = load_config(ROOT / "examples" / "provider.toml")
    assert chain.rpc_url.startswith("http")
    assert config.port == 7001
    assert [m.name for m in config.models] == ["mlp"]
    assert config.backend.kind == "onnxruntime"
    assert config.withdraw_threshold == 10**18  # earnings are withdrawn once a market owes a token


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"listen": "nope"}, "provider.listen"),
        ({"backend": {"kind": "kserve"}}, "provider.backend"),
        ({"batching": {"max_batch": 0}}, "provider.batching.max_batch"),
        ({"pricing": {"margin": -1}}, "provider.pricing.margin"),
        ({"surprise": 1}, "provider.surprise"),
        ({"withdraw_threshold": -1}, "provider.withdraw_threshold"),
        ({"withdraw_threshold": "lots"}, "provider.withdraw_threshold"),
        ({"models": [{"name": "a", "onnx": "a.onnx"}, {"name": "a", "onnx": "b.onnx"}]}, "provider.models"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}"):
        parse_section(ProviderSection, data, name="provider")


def test_misbehave_knobs_override_config() -> None:
    config = _misbehave(ProviderSection(), ("silent:3", "wrong-output:5"))
    assert config.misbehave.silent_on_job == 3
    assert config.misbehave.wrong_output_on_job == 5
    with pytest.raises(Exception, match="silent:N"):
        _misbehave(ProviderSection(), ("loud:1",))


def test_cli_lists_its_commands() -> None:
    result = CliRunner().invoke(group, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "stake", "unstake", "redeem", "status"):
        assert command in result.output


def test_cli_is_registered_under_tender() -> None:
    from tender.cli import cli

    assert "provider" in cli.commands


def test_status_without_chain_shows_the_error(tmp_path: Path) -> None:
    config = tmp_path / "provider.toml"
    config.write_text(
        f'[chain]\nrpc_url = "http://127.0.0.1:1"\n[provider]\nstore = "{tmp_path / "jobs.db"}"\n'
    )
    result = CliRunner().invoke(group, ["status", "--config", str(config)])
    assert "no store" in result.output  # the local part is still shown
    assert isinstance(result.exception, ChainError)  # but the status fails: `tender` exits 2
    assert not (tmp_path / "jobs.db").exists()
