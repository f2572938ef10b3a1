"""Every ``tender`` error is one line on stderr and exit code 2, never a traceback.

Each case runs the real ``tender`` command in its own process, against a real Anvil with a Tender
deployment where the case needs a chain, and checks the contract of the root CLI's one error
handler (``tender.cli.main``): exit code 2, exactly one line on stderr naming what was wrong, no
``Traceback``; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import deploy, load_artifact
from tender.devnet._supervisor import tender_command
from tender.errors import ArtifactError
from tender.models import build
from tender.paths import SAMPLE_MODELS

GOOD_KEY = DEV_KEYS[1]
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


@dataclass
class Net:
    rpc: str
    deployment: Path
    tmp: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    try:
        load_artifact("ReverseAuctionMarket")
    except ArtifactError:
        pytest.skip("Tender contracts not built: run `make contracts`")
    # the requester cases resolve `mlp` to its cached bundle first: a fresh clone builds it here
    build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")
    tmp = tmp_path_factory.mktemp("cli")
    with Anvil() as chain:
        deploy(Web3(Web3.HTTPProvider(chain.rpc_url)), DEV_KEYS[0], save=tmp / "deployment.json")
        (tmp / "down.toml").write_text(
            f'[chain]\nrpc_url = "{NOWHERE}"\n[provider]\nstore = "{tmp / "jobs.db"}"\n'
            f'[solver]\nstore = "{tmp / "solver.sqlite"}"\n'
        )
        (tmp / "up.toml").write_text(
            f'[chain]\nrpc_url = "{chain.rpc_url}"\ndeployment = "{tmp / "deployment.json"}"\n'
        )
        (tmp / "bad.json").write_text("[1, 2,")
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp / "busy.toml").write_text(
            f'[chain]\nrpc_url = "{NOWHERE}"\n[provider]\nlisten = "127.0.0.1:{port}"\n'
        )
        try:
            yield Net(chain.rpc_url, tmp / "deployment.json", tmp)
        finally:
            busy.close()


def tender(
    *args: str, key: str | None = GOOD_KEY, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TENDER_PRIVATE_KEY", "TENDER_DEBUG")}
    env["NO_COLOR"] = "1"
    if key is not None:
        env["TENDER_PRIVATE_KEY"] = key
    return subprocess.run(
        [*tender_command(), *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd
    )


def _cases(net: Net) -> dict[str, tuple[list[str], str | None, str]]:
    """``{case: (argv, TENDER_PRIVATE_KEY, a fragment the error line must hold)}``."""
    chain = ["--rpc", net.rpc, "--deployment", str(net.deployment)]
    up, down = str(net.tmp / "up.toml"), str(net.tmp / "down.toml")
    job = "0x" + "ab" * 32
    owed = ["market", "owed", "--account", ADDRESS]

    def request(model: str = "mlp", **options: str) -> list[str]:
        values = {"max_price": "0.1", "input": "[0.5]", "rpc": net.rpc, "deployment": str(net.deployment)}
        values.update(options)
        return [
            "request",
            "run",
            model,
            *(x for k, v in values.items() for x in ("--" + k.replace("_", "-"), v)),
        ]

    run = request()

    def desk(
        model: str = str(SAMPLE_MODELS / "lm"),
        model_id: str = "0x" + "ab" * 32,
        market: str = "0x" + "11" * 20,
    ) -> list[str]:
        return ["--model", model, "--model-id", model_id, "--rpc", NOWHERE, "--market", market, "--port", "9"]

    return {
        # keys
        "key not hex": (run, "0xnothex", "TENDER_PRIVATE_KEY"),
        "key too short": (run, "0x1234", "TENDER_PRIVATE_KEY"),
        "key missing": (["market", "withdraw", *chain], None, "TENDER_PRIVATE_KEY"),
        "key zero": (run, "0x" + "00" * 32, "TENDER_PRIVATE_KEY"),
        # URLs
        "rpc unreachable": ([*owed, "--rpc", NOWHERE], GOOD_KEY, NOWHERE),
        "rpc malformed": ([*owed, "--rpc", "not a url"], GOOD_KEY, "not a url"),
        "rpc unreachable (request)": (request(rpc=NOWHERE), GOOD_KEY, NOWHERE),
        "audit rpc unreachable": (["audit", "--rpc", NOWHERE], None, NOWHERE),
        "provider port busy": (
            ["provider", "run", "--config", str(net.tmp / "busy.toml")],
            GOOD_KEY,
            "in use",
        ),
        "solver run chain down": (["solver", "run", "--config", down], GOOD_KEY, NOWHERE),
        "verifier run chain down": (["verifier", "run", "--config", down], GOOD_KEY, NOWHERE),
        "provider status chain down": (["provider", "status", "--config", down], GOOD_KEY, NOWHERE),
        # JSON
        "input malformed inline": (request(input="[1, 2"), GOOD_KEY, "--input"),
        "input malformed file": (request(input=str(net.tmp / "bad.json")), GOOD_KEY, "--input"),
        "input file missing": (request(input=str(net.tmp / "nope.json")), GOOD_KEY, "--input"),
        "input not an array": (request(input='{"a": 1}'), GOOD_KEY, "--input"),
        # model ids and amounts
        "unknown model": (request("no-such-model"), GOOD_KEY, "no-such-model"),
        "model id malformed": (request(model_id="0x12"), GOOD_KEY, "--model-id"),
        "model id not registered": (request(model_id="0x" + "cd" * 32), GOOD_KEY, "0x" + "cd" * 32),
        "max price malformed": (request(max_price="lots"), GOOD_KEY, "--max-price"),
        "max price too precise": (request(max_price="1e-30"), GOOD_KEY, "--max-price"),
        "stake amount malformed": (["provider", "stake", "lots", "--config", up], GOOD_KEY, "AMOUNT"),
        "requester malformed": (
            ["intent", "typed-data", "mlp", "--max-price", "1", "--requester", "0x12", *chain],
            None,
            "--requester",
        ),
        "account malformed": (["market", "owed", "--account", "bob", *chain], GOOD_KEY, "--account"),
        # job ids
        "job id malformed": (["audit", "--job", "0x1234", *chain], None, "--job"),
        "job id unknown": (["audit", "--job", job, *chain], None, job),
        # files
        "deployment missing": (
            [*owed, "--rpc", net.rpc, "--deployment", str(net.tmp / "nope.json")],
            GOOD_KEY,
            "nope.json",
        ),
        "config missing": (["verifier", "status", "--config", str(net.tmp / "nope.toml")], None, "nope.toml"),
        "request config missing": ([*run, "--config", str(net.tmp / "nope.toml")], GOOD_KEY, "nope.toml"),
        "bundle missing": (request(bundle=str(net.tmp / "no-bundle")), GOOD_KEY, "--bundle"),
        "onnx missing": (
            ["model", "build", str(net.tmp / "nope.onnx"), "--calibration", str(net.tmp / "bad.json")],
            None,
            "nope.onnx",
        ),
        "intent file missing": (
            [
                "intent",
                "send",
                "--intent",
                str(net.tmp / "nope.json"),
                "--signature",
                "0x00",
                "--solver",
                NOWHERE,
                *chain,
            ],
            None,
            "nope.json",
        ),
        # token desks
        "token desk model id malformed": (
            ["provider", "tokens", *desk(model_id="0x12")],
            GOOD_KEY,
            "--model-id",
        ),
        "token desk market malformed": (["provider", "tokens", *desk(market="0x12")], GOOD_KEY, "--market"),
        "token desk key missing": (["provider", "tokens", *desk()], None, "TENDER_PRIVATE_KEY"),
        "token desk model missing": (
            ["provider", "tokens", *desk(model=str(net.tmp / "no-lm"))],
            GOOD_KEY,
            "--model",
        ),
        "token desk cheat without its model": (
            ["provider", "tokens", *desk(), "--misbehave", "cheap"],
            GOOD_KEY,
            "--cheap-model",
        ),
        # token verifiers (the desk's arguments but --port)
        "token verifier model id malformed": (
            ["verifier", "tokens", *desk(model_id="0x12")[:-2]],
            GOOD_KEY,
            "--model-id",
        ),
        "token verifier listen malformed": (
            ["verifier", "tokens", *desk()[:-2], "--listen", "nowhere"],
            GOOD_KEY,
            "--listen",
        ),
        "token verifier key missing": (["verifier", "tokens", *desk()[:-2]], None, "TENDER_PRIVATE_KEY"),
        "token verifier chain down": (["verifier", "tokens", *desk()[:-2]], GOOD_KEY, NOWHERE),
        # usage
        "unknown command": (["no-such-command"], None, "no-such-command"),
        "missing option": (["request", "run", "mlp"], GOOD_KEY, "--max-price"),
        "devnet option out of range": (["devnet", "--requests", "-1"], None, "--requests"),
    }


CASES = list(_cases(Net("", Path("d"), Path("t"))))


@pytest.mark.parametrize("case", CASES)
def test_cli_error_is_one_line_and_exit_code_2(net: Net, case: str) -> None:
    argv, key, fragment = _cases(net)[case]
    done = tender(*argv, key=key, cwd=net.tmp)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert GOOD_KEY.removeprefix("0x") not in done.stderr + done.stdout  # never echo a key


def test_debug_shows_the_traceback(net: Net) -> None:
    done = tender("--debug", "market", "owed", "--account", ADDRESS, "--rpc", NOWHERE)
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_status_commands_create_no_database(net: Net) -> None:
    config = net.tmp / "down.toml"
    for role in ("solver", "verifier"):
        done = tender(role, "status", "--config", str(config), cwd=net.tmp)
        assert done.returncode == 0, done.stderr
        assert "has not run" in done.stdout
    assert not (net.tmp / "solver.sqlite").exists()
    assert not list(net.tmp.glob("*.db"))
    assert not list(net.tmp.glob("*.sqlite"))


def test_audit_of_an_unknown_job_does_not_pass(net: Net) -> None:
    done = tender(
        "audit", "--job", "0x" + "ab" * 32, "--json", "--rpc", net.rpc, "--deployment", str(net.deployment)
    )
    assert done.returncode == 2
    assert "passed" not in done.stdout
    assert json.loads(done.stdout or "null") is None


def test_failed_stake_leaves_no_allowance_and_amounts_are_tokens(net: Net) -> None:
    from tender.chain import Deployment, Staking, Token, TxSender

    w3 = Web3(Web3.HTTPProvider(net.rpc))
    deployment = Deployment.load(path=net.deployment)
    owner = Token(w3, deployment.token, sender=TxSender(w3, DEV_KEYS[0]))
    owner.mint(ADDRESS, 10 * 10 ** owner.decimals())
    config = str(net.tmp / "up.toml")

    failed = tender("provider", "stake", "20", "--config", config)  # more than the 10 tokens held
    assert failed.returncode == 2, failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert owner.allowance(ADDRESS, deployment.staking) == 0  # the approval was taken back

    done = tender("provider", "stake", "2.5", "--config", config)  # tokens, in the token's decimals
    assert done.returncode == 0, done.stderr
    assert Staking(w3, deployment.staking).stake_of(ADDRESS) == 25 * 10 ** (owner.decimals() - 1)
    assert f"staked 2.5 {owner.symbol()}" in done.stdout
