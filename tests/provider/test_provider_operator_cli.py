"""``tender provider register`` / ``authorize`` and ``tender token mint`` / ``balance`` on a real
Anvil chain: what they send is what the contracts then hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import Staking, Token, connect
from tender.cli import cli
from tender.devnet._chain import TOKEN, ChainSetup
from tender.paths import SAMPLE_MODELS

PROVIDER_KEY = DEV_KEYS[3]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChainSetup, Path]]:
    folder = tmp_path_factory.mktemp("operator")
    with Anvil() as anvil:
        setup = ChainSetup(w3=connect(anvil.rpc_url), deployer_key=DEV_KEYS[0])
        setup.deploy(save=folder / "deployment.json")
        setup.register_models(["mlp"])
        config = folder / "provider.toml"
        config.write_text(
            f'[chain]\nrpc_url = "{anvil.rpc_url}"\ndeployment = "{folder / "deployment.json"}"\n\n'
            '[provider]\nlisten = "127.0.0.1:7011"\nregion = "0x0042"\nhardware = "h100"\n\n'
            f'[[provider.models]]\nname = "mlp"\nonnx = "{SAMPLE_MODELS / "mlp" / "model.onnx"}"\n'
            f'bundle = "{setup.models["mlp"].bundle}"\n'
        )
        yield setup, config


def _tender(*args: str, key: str = PROVIDER_KEY) -> str:
    result = CliRunner().invoke(cli, list(args), env={"TENDER_PRIVATE_KEY": key}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_register_publishes_the_operator_record_with_the_registered_model(
    network: tuple[ChainSetup, Path],
) -> None:
    setup, config = network
    _tender("provider", "register", "--config", str(config))
    assert setup.deployment is not None
    operator = Staking(setup.w3, setup.deployment.staking).operator(setup.address(PROVIDER_KEY))
    assert operator.registered
    assert operator.endpoint == "http://127.0.0.1:7011"  # no public_url: http:// + listen
    assert operator.region == bytes.fromhex("0042")
    assert operator.hardware_class.rstrip(b"\x00") == b"h100"
    # no model_id in the config: the id registered for the bundle's ONNX and settings hashes
    assert ["0x" + m.hex() for m in operator.models] == [setup.models["mlp"].model_id]


def test_authorize_and_revoke_a_solver(network: tuple[ChainSetup, Path]) -> None:
    setup, config = network
    assert setup.deployment is not None
    staking = Staking(setup.w3, setup.deployment.staking)
    provider, solver = setup.address(PROVIDER_KEY), setup.address(DEV_KEYS[4])
    assert "may act" in _tender("provider", "authorize", solver, "--config", str(config))
    assert staking.is_authorized(provider, solver)
    assert "may not act" in _tender("provider", "authorize", solver, "--revoke", "--config", str(config))
    assert not staking.is_authorized(provider, solver)


def test_authorize_refuses_a_bad_address_in_one_line(network: tuple[ChainSetup, Path]) -> None:
    _, config = network
    result = CliRunner().invoke(
        cli,
        ["provider", "authorize", "0x1234", "--config", str(config)],
        env={"TENDER_PRIVATE_KEY": PROVIDER_KEY},
    )
    assert result.exit_code == 2
    assert "not an address" in result.output


def test_token_mint_and_balance_in_whole_tokens(network: tuple[ChainSetup, Path]) -> None:
    setup, config = network
    assert setup.deployment is not None
    token = Token(setup.w3, setup.deployment.token)
    someone = setup.address(DEV_KEYS[5])
    before = token.balance_of(someone)
    out = _tender("token", "mint", "2.5", "--to", someone, "--config", str(config), key=DEV_KEYS[6])
    assert token.balance_of(someone) == before + 5 * TOKEN // 2  # anyone may mint the TestToken
    assert someone in out
    assert "2.5" in _tender("token", "balance", "--account", someone, "--config", str(config))
