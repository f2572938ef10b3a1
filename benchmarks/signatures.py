"""Micro-benchmark: recovering an intent's signer, three ways.

1. ``tender.intents.recover_signer``: digest with eth-abi + keccak, recovery with libsecp256k1
   (coincurve) — what solvers and providers run on every intent they see.
2. ``eth_account``: ``encode_typed_data`` + ``Account.recover_message`` (its typed-data encoder
   is pure Python; recovery uses eth-keys' best backend, coincurve when installed).
3. ``eth_keys`` pure-Python backend (``NativeECCBackend``) on the same digest: the cost without
   any C library.

Run: ``python benchmarks/signatures.py`` (writes ``benchmarks/results/signatures.json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_keys.backends import NativeECCBackend
from rich.console import Console
from rich.table import Table

from tender.anvil import DEV_KEYS
from tender.intents import Intent, job_id, random_nonce, recover_signer, sign_intent, typed_data

RESULTS = Path(__file__).resolve().parent / "results" / "signatures.json"
MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337


def _time(fn: Callable[[], object], *, budget: float = 1.0) -> float:
    """Mean seconds per call over about ``budget`` seconds (at least 20 calls)."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 20 or time.perf_counter() - start < budget:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def main() -> dict[str, float]:
    account = Account.from_key(DEV_KEYS[1])
    intent = Intent(
        requester=account.address,
        model_id=b"\x11" * 32,
        input_commitment=12345,
        max_price=10**18,
        deadline=2_000_000_000,
        input_location=b"ipfs://bafy",
        nonce=random_nonce(),
        expiry=2_000_000_000,
    )
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=CHAIN_ID, market=MARKET)
    message = typed_data(intent, chain_id=CHAIN_ID, market=MARKET)
    digest = job_id(intent, chain_id=CHAIN_ID, market=MARKET)
    native = KeyAPI(NativeECCBackend)
    sig_obj = native.Signature(signature[:64] + bytes([signature[64] - 27]))

    def ours() -> object:
        return recover_signer(intent, signature, chain_id=CHAIN_ID, market=MARKET)

    def eth_account_path() -> object:
        return Account.recover_message(encode_typed_data(full_message=message), signature=signature)

    def pure_python() -> object:
        return native.ecdsa_recover(digest, sig_obj).to_checksum_address()

    assert ours() == eth_account_path() == pure_python() == account.address
    results = {
        "tender_recover_signer_ms": _time(ours) * 1e3,
        "eth_account_typed_data_ms": _time(eth_account_path) * 1e3,
        "pure_python_ecrecover_ms": _time(pure_python) * 1e3,
        "tender_job_id_ms": _time(lambda: job_id(intent, chain_id=CHAIN_ID, market=MARKET)) * 1e3,
        "tender_sign_intent_ms": _time(
            lambda: sign_intent(intent, DEV_KEYS[1], chain_id=CHAIN_ID, market=MARKET)
        )
        * 1e3,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title="intent signatures (ms per call)")
    table.add_column("path")
    table.add_column("ms", justify="right")
    for name, value in results.items():
        table.add_row(name, f"{value:.3f}")
    Console().print(table)
    return results


if __name__ == "__main__":
    main()
