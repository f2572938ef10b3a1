"""Every way a request can fail has a typed, documented error under RequestError."""

from __future__ import annotations

import pytest

import tender
from tender.client import (
    ProofInvalid,
    ProviderSlashed,
    RequestError,
    RequestExpired,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.client._cli import EXIT_CODES
from tender.errors import TenderError

ALL = (RequestRejected, RequestRefunded, RequestExpired, ProviderSlashed, ProofInvalid, RequestTimeout)
JOB = "0x" + "ab" * 32


@pytest.mark.parametrize("cls", ALL)
def test_error_is_a_documented_request_error(cls: type[RequestError]) -> None:
    assert issubclass(cls, RequestError)
    assert issubclass(cls, TenderError)
    assert cls.__doc__
    assert len(cls.__doc__.strip()) > 30
    assert getattr(tender, cls.__name__) is cls  # re-exported from the top package
    assert cls.__name__ in tender.client._errors.__doc__  # drawn in the module's tree


@pytest.mark.parametrize("cls", ALL)
def test_every_error_has_its_own_exit_code(cls: type[RequestError]) -> None:
    assert cls in EXIT_CODES
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)


def test_expired_carries_refund_and_compensation() -> None:
    exc = RequestExpired(job_id=JOB, refund=100, compensation=40, provider="0x" + "11" * 20, tx_hash="0x01")
    assert exc.received == 140
    assert exc.provider.endswith("11")
    assert "compensation 40" in str(exc)
    assert "expired" in str(exc)


def test_slashed_carries_the_wrong_output() -> None:
    exc = ProviderSlashed(job_id=JOB, refund=10, compensation=5, provider="0xp", output=[1, 2])
    assert exc.received == 15
    assert exc.output == [1, 2]
    assert "slashed" in str(exc)


def test_refunded_without_compensation() -> None:
    exc = RequestRefunded(job_id=JOB, refund=7)
    assert exc.compensation == 0
    assert exc.received == 7
    assert "compensation" not in str(exc)


def test_rejected_keeps_every_reason() -> None:
    exc = RequestRejected(
        "no solver accepted", job_id=JOB, reasons={"http://s1": "422: bad", "http://s2": "unreachable"}
    )
    assert exc.reasons["http://s1"] == "422: bad"
    assert exc.job_id == JOB


def test_timeout_and_proof_invalid_name_the_job() -> None:
    timeout = RequestTimeout(job_id=JOB, last_state="awarded", waited_s=12.5)
    assert timeout.last_state == "awarded"
    assert "12.5" in str(timeout)
    invalid = ProofInvalid("bad proof", job_id=JOB)
    assert invalid.reason == "bad proof"
    assert JOB[:10] in str(invalid)


def test_catching_the_root_catches_them_all() -> None:
    with pytest.raises(RequestError):
        raise RequestExpired(job_id=JOB)


def test_request_against_an_unreachable_chain_raises_request_failed(tmp_path: object) -> None:
    """Nothing raw escapes a request: a connection failure is a RequestError too (exit 2)."""
    import asyncio

    from tender.anvil import DEV_KEYS
    from tender.chain import Deployment
    from tender.client import Client, RequestFailed

    address = "0x" + "11" * 20
    deployment = Deployment(
        chain_id=31337,
        token=address,
        registry=address,
        staking=address,
        markets={"reverse": address, "dutch": address},
        block=0,
    )
    client = Client(
        "http://127.0.0.1:9",
        DEV_KEYS[7],
        deployment=deployment,
        model_ids={"mlp": "0x" + "ab" * 32},
        solvers=["http://127.0.0.1:9"],
    )

    async def go() -> None:
        async with client:
            await client.request("mlp", [0.5], max_price=10, deadline=60)

    with pytest.raises(RequestFailed) as caught:
        asyncio.run(go())
    assert isinstance(caught.value, RequestError)
    assert caught.value.__cause__ is not None
    assert RequestFailed not in EXIT_CODES  # the CLI's generic error: exit 2
    assert "RequestFailed" in tender.client._errors.__doc__


def test_a_bad_key_is_a_config_error_naming_the_key() -> None:
    from tender.client import Client
    from tender.errors import ConfigError

    with pytest.raises(ConfigError, match="Client key"):
        Client("http://127.0.0.1:9", "0x1234")
