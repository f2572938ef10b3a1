"""The Python side agrees with the compiled contracts: events, structs, errors, sizes."""

from __future__ import annotations

import dataclasses

import pytest
from chain_env import tender_built

from tender.chain import EVENT_TYPES, TENDER_CONTRACTS, Job, load_artifact, snake, tender_decoder
from tender.chain._artifacts import MAX_CODE_SIZE
from tender.chain._structs import MarketParams, ModelInfo, Operator, Stats
from tender.intents import INTENT_FIELDS, INTENT_TYPE, Bid, Intent

pytestmark = pytest.mark.skipif(not tender_built(), reason="Tender contracts not built: run `make contracts`")

_META = {"address", "block_number", "tx_hash", "log_index"}


def _components(contract: str, function: str) -> list[str]:
    entry = next(e for e in load_artifact(contract).entries("function") if e["name"] == function)
    return [snake(c["name"]) for c in entry["outputs"][0]["components"]]


@pytest.mark.parametrize("contract", [*TENDER_CONTRACTS, "TenderAgent"])
def test_every_event_has_a_typed_class_with_its_fields(contract: str) -> None:
    from tender.chain._events import EVENT_ALIASES

    for entry in load_artifact(contract).entries("event"):
        if contract == "TenderAgent" and entry["name"] not in ("Withdrawn",):
            continue  # the example's own events are read raw; only a shared signature matters
        cls = EVENT_TYPES.get(entry["name"])
        assert cls is not None, f"{contract}.{entry['name']} has no class in tender.chain._events"
        fields = {f.name for f in dataclasses.fields(cls)} - _META
        aliases = EVENT_ALIASES.get(entry["name"], {})
        names = {aliases.get(snake(i["name"]), snake(i["name"])) for i in entry["inputs"]}
        assert fields == names, entry["name"]


def test_withdrawn_of_staking_and_markets_share_one_class() -> None:
    """Staking's, the markets' and TenderAgent's ``Withdrawn`` share one topic: one class, whichever
    ABI decoded the log (``account``, with Staking's ``provider`` as a property)."""
    from eth_abi import encode

    from tender.chain import LogDecoder, Withdrawn, to_event

    log = {"address": "0x" + "aa" * 20, "blockNumber": 1, "transactionHash": "0x" + "00" * 32, "logIndex": 0,
           "data": "0x" + encode(["uint256"], [7]).hex()}  # fmt: skip
    for contract in ("Staking", "ReverseAuctionMarket", "TenderAgent"):
        decoder = LogDecoder(load_artifact(contract).abi)
        topics = [decoder.topic("Withdrawn"), b"\x00" * 12 + b"\x11" * 20]
        decoded = decoder.decode({**log, "topics": topics})
        assert decoded is not None
        event = to_event(decoded)
        assert isinstance(event, Withdrawn), contract
        assert (event.account, event.provider, event.amount) == ("0x" + "11" * 20, "0x" + "11" * 20, 7)


def test_job_struct_matches() -> None:
    ours = [f.name for f in dataclasses.fields(Job) if f.name != "job_id"]
    assert ours == _components("ReverseAuctionMarket", "job")


@pytest.mark.parametrize(
    ("cls", "contract", "function"),
    [
        (MarketParams, "ReverseAuctionMarket", "params"),
        (ModelInfo, "ModelRegistry", "model"),
        (Operator, "Staking", "operator"),
        (Stats, "Staking", "stats"),
        (Bid, "ReverseAuctionMarket", "bestBid"),
    ],
)
def test_struct_dataclasses_match(cls: type, contract: str, function: str) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == _components(contract, function)


def test_intent_fields_and_type_string_match_the_abi() -> None:
    entry = next(
        e for e in load_artifact("ReverseAuctionMarket").entries("function") if e["name"] == "hashIntent"
    )
    components = entry["inputs"][0]["components"]
    assert [(c["name"], c["type"]) for c in components] == [(sol, abi) for sol, _, abi in INTENT_FIELDS]
    assert {name for _, name, _ in INTENT_FIELDS} == {f.name for f in dataclasses.fields(Intent)}
    assert "Intent(" + ",".join(f"{c['type']} {c['name']}" for c in components) + ")" == INTENT_TYPE


def test_decoder_knows_every_custom_error() -> None:
    names = tender_decoder().names
    for contract in TENDER_CONTRACTS:
        for entry in load_artifact(contract).entries("error"):
            assert entry["name"] in names


@pytest.mark.parametrize("contract", TENDER_CONTRACTS)
def test_contract_sizes_fit_eip170(contract: str) -> None:
    size = len(load_artifact(contract).runtime)
    assert size <= MAX_CODE_SIZE, f"{contract} runtime is {size} bytes, over EIP-170's {MAX_CODE_SIZE}"
