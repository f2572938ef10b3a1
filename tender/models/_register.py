"""Putting a model on chain: deploy its EZKL verifier, build its registry entry, register it.

The market trusts a model through its ``ModelRegistry`` entry: the ONNX sha256 and settings
hash say *which* model, the verifier (with the weights fixed in its verifying key) says
*how* proofs are checked, the input binding says how a proof is tied to the intent's input
commitment (``INPUT_POLYCOMMIT``: ``keccak256(proof[0:64])``; ``INPUT_HASHED``: the instance at
``commitmentIndex``), and the layout says where the outputs sit in the instance vector. Two
refusals protect that entry:

- the ONNX file offered must hash to the card's ``onnx_sha256`` (:class:`ModelHashMismatch`);
- a bundle built on the locally generated SRS (``--srs dev``) goes only to local chains
  (chain id 31337 or 1337) unless ``allow_insecure_srs=True`` (:class:`InsecureSrsError`):
  whoever generated that SRS can forge proofs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from tender.chain import ModelInfo, Registry, TxSender
from tender.models._bundle import INSECURE_SRS_WARNING, Bundle, sha256_file
from tender.models._errors import BundleError, InsecureSrsError, ModelHashMismatch

#: Chains where a dev-SRS bundle may be deployed without ``allow_insecure_srs``.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})

Signer = TxSender | LocalAccount | str | bytes


def _sender(w3: Web3, account: Signer) -> TxSender:
    return account if isinstance(account, TxSender) else TxSender(w3, account)


def check_onnx(bundle: Bundle, onnx_path: str | Path | None = None) -> str:
    """Refuse an ONNX file whose sha256 is not the card's; returns the hash.

    Raises:
        ModelHashMismatch: the file (default: the bundle's own copy) hashes differently.
    """
    actual = sha256_file(Path(onnx_path) if onnx_path is not None else bundle.onnx)
    if actual != bundle.card.onnx_sha256:
        raise ModelHashMismatch(bundle.card.onnx_sha256, actual)
    return actual


def check_srs(bundle: Bundle, chain_id: int, *, allow_insecure_srs: bool = False) -> None:
    """Refuse a dev-SRS bundle on a non-local chain unless explicitly allowed.

    Raises:
        InsecureSrsError: the bundle's SRS is the local development one and ``chain_id`` is
            not a local chain.
    """
    if bundle.insecure_srs and chain_id not in LOCAL_CHAIN_IDS and not allow_insecure_srs:
        raise InsecureSrsError(
            f"bundle {bundle.name} is {INSECURE_SRS_WARNING}; refusing chain {chain_id} "
            "(rebuild with --srs FILE, or pass allow_insecure_srs)"
        )


def deploy_verifier(w3: Web3, account: Signer, bundle: Bundle, *, allow_insecure_srs: bool = False) -> str:
    """Deploy the bundle's compiled ``Halo2Verifier`` and return its address.

    Checks that the deployed runtime code hashes to the card's ``verifier_runtime_keccak256``.

    Raises:
        InsecureSrsError: dev-SRS bundle on a non-local chain without the flag.
        BundleError: the deployed code is not the card's verifier.
    """
    sender = _sender(w3, account)
    check_srs(bundle, sender.chain_id, allow_insecure_srs=allow_insecure_srs)
    artefact = bundle.verifier()
    address, _ = sender.deploy(bytes.fromhex(artefact["bytecode"].removeprefix("0x")))
    code = bytes(w3.eth.get_code(Web3.to_checksum_address(address)))
    if "0x" + Web3.keccak(code).hex().removeprefix("0x") != bundle.card.verifier_runtime_keccak256:
        raise BundleError(f"verifier deployed at {address} does not match the card's runtime code hash")
    return address


def registry_entry(
    bundle: Bundle,
    *,
    verifier: str,
    owner: str,
    chain_id: int,
    audit_rate_bps: int = 0,
    proof_modes: int | None = None,
    onnx_path: str | Path | None = None,
    allow_insecure_srs: bool = False,
) -> dict[str, Any]:
    """The ``ModelRegistry.register`` fields for this bundle, in the struct's order.

    Args:
        bundle: the model bundle.
        verifier: address of its deployed verifier (:func:`deploy_verifier`).
        owner: the model owner's address.
        chain_id: the chain it goes to (the SRS policy depends on it).
        audit_rate_bps: share of optimistic deliveries audited, in basis points.
        proof_modes: bitmask (1 = zk, 2 = optimistic); default: the card's modes.
        onnx_path: the ONNX file to check against the card (default: the bundle's copy).
        allow_insecure_srs: accept a dev-SRS bundle on a non-local chain.

    Raises:
        ModelHashMismatch: the ONNX file does not hash to the card's ``onnx_sha256``.
        InsecureSrsError: dev-SRS bundle on a non-local chain without the flag.
        BundleError: the bundle has no input commitment (public-input bundles).

    The entry's ``inputBinding`` is the card's (1 for polycommit, 0 for hashed bundles);
    ``commitmentIndex`` is 0 for polycommit (the registry requires it); ``batchSize`` is the
    card's jobs per proof (a batch bundle is its own model, settled by ``deliverBatch``).
    """
    card = bundle.card
    onnx_sha256, layout = _checked(
        bundle,
        chain_id,
        audit_rate_bps=audit_rate_bps,
        onnx_path=onnx_path,
        allow_insecure_srs=allow_insecure_srs,
    )
    layout = dict(layout)
    batch_size = layout.pop("batchSize")
    return {
        "onnxSha256": HexBytes(bytes.fromhex(onnx_sha256)),
        "settingsHash": HexBytes(bytes.fromhex(card.settings_sha256)),
        "verifier": Web3.to_checksum_address(verifier),
        **layout,
        "proofModes": card.proof_modes_mask if proof_modes is None else proof_modes,
        "auditRateBps": audit_rate_bps,
        "batchSize": batch_size,
        "owner": Web3.to_checksum_address(owner),
    }


def _checked(
    bundle: Bundle,
    chain_id: int,
    *,
    audit_rate_bps: int,
    onnx_path: str | Path | None,
    allow_insecure_srs: bool,
) -> tuple[str, dict[str, int]]:
    """Every refusal of a registry entry, none of which needs the chain: ``(onnx sha256, layout)``."""
    onnx_sha256 = check_onnx(bundle, onnx_path)
    check_srs(bundle, chain_id, allow_insecure_srs=allow_insecure_srs)
    layout = bundle.card.registry_layout()  # BundleError for public inputs
    for field_name, value, bits in (
        ("commitmentIndex", layout["commitmentIndex"], 8),
        ("outputOffset", layout["outputOffset"], 8),
        ("outputLength", layout["outputLength"], 16),
        ("instanceCount", layout["instanceCount"], 16),
        ("auditRateBps", audit_rate_bps, 16),
        ("batchSize", layout["batchSize"], 8),
    ):
        if not 0 <= value < 2**bits:
            raise BundleError(f"{field_name}={value} does not fit the registry's uint{bits}")
    return onnx_sha256, layout


@dataclass(frozen=True)
class Registration:
    """What :func:`register_model` did.

    Attributes:
        model_id: the registry's id of the model (``keccak256(registrant, info)``).
        verifier: the verifier's address.
        entry: the registry fields.
        tx_hash: the ``register`` transaction, or ``None`` when the record already existed.
    """

    model_id: bytes
    verifier: str
    entry: dict[str, Any]
    tx_hash: str | None


def register_model(
    w3: Web3,
    account: Signer,
    registry_address: str,
    bundle: Bundle,
    *,
    verifier: str | None = None,
    audit_rate_bps: int = 0,
    proof_modes: int | None = None,
    onnx_path: str | Path | None = None,
    allow_insecure_srs: bool = False,
) -> Registration:
    """Deploy the verifier (unless given) and register the model in ``ModelRegistry``.

    The checks of :func:`registry_entry` run before anything is sent (the verifier is deployed
    only once they pass). Registering the same record twice from the same account is a no-op
    that returns the existing id.

    Raises:
        ModelHashMismatch: the ONNX file does not hash to the card's ``onnx_sha256``.
        InsecureSrsError: dev-SRS bundle on a non-local chain without the flag.
        BundleError: the bundle has no input commitment (public input) or a layout field does
            not fit the registry.
        ContractRevert: the registry refused the record (decoded custom error).
    """
    sender = _sender(w3, account)
    _checked(
        bundle,
        sender.chain_id,
        audit_rate_bps=audit_rate_bps,
        onnx_path=onnx_path,
        allow_insecure_srs=allow_insecure_srs,
    )
    if verifier is None:
        verifier = deploy_verifier(w3, sender, bundle, allow_insecure_srs=allow_insecure_srs)
    entry = registry_entry(
        bundle,
        verifier=verifier,
        owner=sender.address,
        chain_id=sender.chain_id,
        audit_rate_bps=audit_rate_bps,
        proof_modes=proof_modes,
        onnx_path=onnx_path,
        allow_insecure_srs=allow_insecure_srs,
    )
    info = ModelInfo.from_dict(entry)
    registry = Registry(w3, registry_address, sender=sender)
    model_id = info.model_id(sender.address)
    if registry.is_registered(model_id):
        return Registration(model_id=model_id, verifier=verifier, entry=entry, tx_hash=None)
    receipt = registry.register(info)
    tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    return Registration(model_id=model_id, verifier=verifier, entry=entry, tx_hash=tx_hash)


def registered_models(
    w3: Web3, registry_address: str, *, from_block: int = 0
) -> list[tuple[bytes, ModelInfo]]:
    """Every model registered in ``ModelRegistry`` (from its ``ModelRegistered`` events)."""
    registry = Registry(w3, registry_address)
    found: list[tuple[bytes, ModelInfo]] = []
    for event in registry.events(from_block, names=["ModelRegistered"]):
        found.append((bytes(event.model_id), event.info))  # type: ignore[attr-defined]
    return found
