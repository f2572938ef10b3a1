"""Intents off-chain: EIP-712 digest, signatures, encodings, nonces (no chain needed)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from tender.anvil import DEV_KEYS
from tender.errors import IntentError
from tender.intents import (
    MAX_BOOK_PRICE,
    AuctionType,
    Bid,
    Intent,
    ProofMode,
    check_signature,
    job_id,
    nonce_bitmap,
    nonce_position,
    nonce_used,
    random_nonce,
    recover_signer,
    sign_intent,
    typed_data,
)

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_MARKET = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
ALICE = Account.from_key(DEV_KEYS[1])


def make_intent(**changes: object) -> Intent:
    base = Intent(
        requester=ALICE.address,
        model_id=bytes(range(32)),
        input_commitment=123456789,
        max_price=10**18,
        deadline=2_000_000_000,
        input_location=b"ipfs://bafy",
        start_price=5 * 10**17,
        auction_type=AuctionType.DUTCH,
        auction_window=30,
        proof_mode=ProofMode.OPTIMISTIC,
        min_stake=10**19,
        region=b"eu",
        price_weight_bps=7_000,
        allow_failover=True,
        callback_gas_limit=200_000,
        nonce=42,
        expiry=1_900_000_000,
    )
    return base.replace(**changes)


u256 = st.integers(min_value=0, max_value=2**256 - 1)
_fields = dict(
    model_id=st.binary(min_size=32, max_size=32),
    input_commitment=u256,
    input_location=st.binary(max_size=80),
    deadline=st.integers(min_value=0, max_value=2**64 - 1),
    auction_window=st.integers(min_value=0, max_value=2**32 - 1),
    region=st.binary(min_size=2, max_size=2),
    price_weight_bps=st.integers(min_value=0, max_value=2**16 - 1),
    allow_failover=st.booleans(),
    nonce=u256,
)
# a reverse intent's max_price fits a bid book word (MAX_BOOK_PRICE); the other auction types take any uint256
intents = st.one_of(
    st.builds(
        make_intent,
        max_price=u256,
        auction_type=st.sampled_from([t for t in AuctionType if t != AuctionType.REVERSE]),
        **_fields,
    ),
    st.builds(
        make_intent,
        max_price=st.integers(min_value=0, max_value=MAX_BOOK_PRICE),
        auction_type=st.just(AuctionType.REVERSE),
        **_fields,
    ),
)


@settings(max_examples=60, deadline=None)
@given(intent=intents, chain_id=st.integers(min_value=1, max_value=2**64))
def test_job_id_equals_eth_account_typed_data_hash(intent: Intent, chain_id: int) -> None:
    message = encode_typed_data(full_message=typed_data(intent, chain_id=chain_id, market=MARKET))
    assert _hash_eip191_message(message) == job_id(intent, chain_id=chain_id, market=MARKET)


def test_sign_intent_matches_eth_account_and_recovers() -> None:
    intent = make_intent()
    ours = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=MARKET)
    theirs = Account.sign_typed_data(
        DEV_KEYS[1], full_message=typed_data(intent, chain_id=31337, market=MARKET)
    )
    assert ours == bytes(theirs.signature)
    assert recover_signer(intent, ours, chain_id=31337, market=MARKET) == ALICE.address
    check_signature(intent, ours, chain_id=31337, market=MARKET)


@pytest.mark.parametrize(
    ("chain_id", "market", "changes"),
    [
        (1, MARKET, {}),
        (31337, OTHER_MARKET, {}),
        (31337, MARKET, {"nonce": 43}),
        (31337, MARKET, {"max_price": 1}),
    ],
)
def test_signature_does_not_carry_over(chain_id: int, market: str, changes: dict[str, object]) -> None:
    intent = make_intent()
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=MARKET)
    with pytest.raises(IntentError, match="not by its requester"):
        check_signature(intent.replace(**changes), signature, chain_id=chain_id, market=market)


def test_malformed_signatures_are_refused() -> None:
    intent = make_intent()
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=MARKET)
    with pytest.raises(IntentError):
        recover_signer(intent, signature[:64], chain_id=31337, market=MARKET)
    with pytest.raises(IntentError):
        recover_signer(intent, signature[:64] + b"\x05", chain_id=31337, market=MARKET)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (
        signature[:32] + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big") + signature[64:]
    )
    with pytest.raises(IntentError, match="malformed"):
        recover_signer(intent, high_s, chain_id=31337, market=MARKET)


@settings(max_examples=40, deadline=None)
@given(intent=intents)
def test_abi_and_json_round_trips(intent: Intent) -> None:
    assert Intent.from_abi(intent.to_abi()) == intent
    assert Intent.from_json(intent.to_json()) == intent


def test_json_matches_the_wire_schema() -> None:
    from tender.wire import IntentWire

    intent = make_intent()
    wire = IntentWire.model_validate(intent.to_json())
    assert Intent.from_json(wire.model_dump()) == intent


@pytest.mark.parametrize(
    "changes",
    [
        {"requester": "0x1234"},
        {"model_id": b"\x00" * 31},
        {"region": b"e"},
        {"deadline": 2**64},
        {"nonce": -1},
        {"auction_type": AuctionType.REVERSE, "start_price": 0, "max_price": MAX_BOOK_PRICE + 1},
    ],
)
def test_invalid_fields_raise_intent_error(changes: dict[str, object]) -> None:
    with pytest.raises(IntentError):
        make_intent(**changes)


def test_a_reverse_intent_names_the_book_word_limit() -> None:
    """One line naming the field and the limit; the widest price a book word holds is accepted, and the same
    price cap is fine for a Dutch intent (no book)."""
    with pytest.raises(IntentError, match=r"max_price: a reverse auction's is at most 2\*\*80 - 1"):
        make_intent(auction_type=AuctionType.REVERSE, start_price=0, max_price=MAX_BOOK_PRICE + 1)
    assert make_intent(auction_type=AuctionType.REVERSE, start_price=0, max_price=MAX_BOOK_PRICE).max_price
    assert make_intent(max_price=MAX_BOOK_PRICE + 1).max_price == MAX_BOOK_PRICE + 1


def test_enums_are_coerced() -> None:
    intent = make_intent(auction_type=0, proof_mode=1)
    assert intent.auction_type is AuctionType.REVERSE
    assert intent.proof_mode is ProofMode.OPTIMISTIC


def test_nonce_helpers() -> None:
    assert nonce_position(0x1234) == (0x12, 0x34)
    assert nonce_bitmap([0x100, 0x103, 0x2FF]) == {1: 0b1001, 2: 1 << 0xFF}
    assert nonce_used(0b1000, 0x103)
    assert not nonce_used(0b1000, 0x102)
    assert len({random_nonce() for _ in range(100)}) == 100
    with pytest.raises(IntentError):
        nonce_position(2**256)


def test_bid_round_trip() -> None:
    bid = Bid(provider=ALICE.address.lower(), price=7, latency=3)
    assert bid.provider == ALICE.address
    assert Bid.from_abi(bid.to_abi()) == bid


def test_json_safe_typed_data_signs_the_same_digest() -> None:
    import json

    intent = make_intent(nonce=2**255 + 1)
    message = json.loads(json.dumps(typed_data(intent, chain_id=31337, market=MARKET, json_safe=True)))
    assert _hash_eip191_message(encode_typed_data(full_message=message)) == job_id(
        intent, chain_id=31337, market=MARKET
    )
