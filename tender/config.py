"""Configuration, validated once at start-up.

One TOML file per running process, with one section per concern; every role reads the
``[chain]`` section and its own (``[provider]``, ``[solver]``, ``[verifier]``). Secrets never
come from the file or the command line: private keys come from the environment variable named
by ``chain.key_env`` (default ``TENDER_PRIVATE_KEY``) or from an encrypted keystore file whose
password is in ``chain.keystore_password_env``::

    [chain]
    rpc_url = "http://127.0.0.1:8545"
    deployment = ".cache/tender/deployments/31337.json"

    [provider]
    listen = "127.0.0.1:7001"

Errors name the field: ``ConfigError("provider.listen: ...")``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tender.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSection(Section):
    """How to reach the chain and whose key signs."""

    rpc_url: str = Field(
        default_factory=lambda: os.environ.get("TENDER_RPC_URL") or "http://127.0.0.1:8545",
        description="JSON-RPC endpoint (default: $TENDER_RPC_URL, else the local 8545)",
    )
    deployment: Path | None = Field(default=None, description="deployment JSON (addresses)")
    confirmations: int = Field(default=0, ge=0, le=64, description="blocks to wait after a receipt")
    poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    key_env: str = Field(default="TENDER_PRIVATE_KEY", description="env var holding the private key")
    keystore: Path | None = Field(default=None, description="encrypted keystore file (instead of key_env)")
    keystore_password_env: str = Field(default="TENDER_KEYSTORE_PASSWORD")

    def private_key(self) -> str:
        """The signing key, from the keystore or the environment (never from the file)."""
        if self.keystore is not None:
            from eth_account import Account

            password = os.environ.get(self.keystore_password_env)
            if password is None:
                raise ConfigError(
                    f"chain.keystore: set {self.keystore_password_env} to the keystore password"
                )
            try:
                data = json.loads(self.keystore.read_text())
                return "0x" + bytes(Account.decrypt(data, password)).hex()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"chain.keystore: cannot decrypt {self.keystore}: {exc}") from exc
        key = os.environ.get(self.key_env)
        if not key:
            raise ConfigError(f"chain.key_env: environment variable {self.key_env} is not set")
        return check_private_key(key, where=self.key_env)


def check_private_key(key: str, *, where: str = "private key") -> str:
    """``key`` as ``0x`` + 64 hex digits; :class:`ConfigError` naming ``where`` (never the key)."""
    text = key.strip()
    digits = text.removeprefix("0x").removeprefix("0X")
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(
            f"{where}: not a private key (0x followed by 64 hex digits; got {len(text)} characters)"
        )
    if not 0 < int(digits, 16) < _SECP256K1_N:
        raise ConfigError(f"{where}: not a private key (out of the secp256k1 range)")
    return "0x" + digits.lower()


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

S = TypeVar("S", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def parse_section(model: type[S], data: dict[str, Any], *, name: str) -> S:
    """Validate one section, turning pydantic's error into a ConfigError naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (name, *first["loc"]))
        raise ConfigError(f"{where}: {first['msg']}") from exc


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file, with a clear error when it is missing or malformed."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def load_section(path: Path, model: type[S], *, name: str) -> S:
    """Load the ``[name]`` section of a TOML file into ``model``."""
    return parse_section(model, read_toml(path).get(name, {}), name=name)


def load_role_config(path: Path, model: type[S], *, name: str) -> tuple[ChainSection, S]:
    """Read a role's TOML file: its ``[chain]`` section and its own ``[name]`` section."""
    data = read_toml(path)
    chain = parse_section(ChainSection, data.get("chain", {}), name="chain")
    return chain, parse_section(model, data.get(name, {}), name=name)


def parse_bytes32(text: str, *, what: str, option: str | None = None) -> bytes:
    """A command-line id (``0x`` + 64 hex digits: a job or model id) as 32 bytes, or
    ``click.BadParameter`` naming ``option`` (one CLI line, exit code 2)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise click.BadParameter(
            f"{text!r} is not a {what} (0x followed by 64 hex digits)", param_hint=option
        )
    return raw


def role_config_option(role: str) -> Callable[[F], F]:
    """``--config`` of a role's commands: its TOML file (``<role>.toml`` by default)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=Path(f"{role}.toml"),
        show_default=True,
        help=f"TOML file with [chain] and [{role}] sections",
    )


def model_id_option(_ctx: click.Context, _param: click.Parameter, value: str) -> bytes:
    """A click callback: ``--model-id`` as 32 bytes (one CLI line naming the option otherwise)."""
    return parse_bytes32(value, what="model id", option="--model-id")


def address_option(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A click callback: an address option, checksummed (one CLI line naming it otherwise)."""
    from web3 import Web3

    if not Web3.is_address(value):
        raise click.BadParameter(f"{value!r}: an address (0x + 40 hex digits)", param=param)
    return str(Web3.to_checksum_address(value))


def token_market_options(command: F) -> F:
    """``--model``, ``--model-id``, ``--rpc`` and ``--market``: a token model on a ``TokenMarket``
    (what a token desk and a token verifier are both told)."""
    options = [
        click.option(
            "--model",
            "model_path",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            required=True,
            help="the token model's folder (model.onnx, tokenizer, meta)",
        ),
        click.option(
            "--model-id", required=True, callback=model_id_option, help="its id in the market (0x + 64 hex)"
        ),
        click.option("--rpc", required=True, envvar="TENDER_RPC_URL", help="the chain's JSON-RPC URL"),
        click.option("--market", required=True, callback=address_option, help="the TokenMarket address"),
    ]
    for option in reversed(options):
        command = option(command)
    return command
