"""Plain dataclasses for the contracts' structs (other than ``Intent``, ``Bid`` and ``Job``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields
from typing import Any, ClassVar, Self

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from tender.chain._abi import snake

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

#: ``ModelInfo.inputBinding``: the Poseidon hash of the input is the instance at ``commitmentIndex``.
INPUT_HASHED = 0
#: ``ModelInfo.inputBinding``: the input is an EZKL ``polycommit`` column whose KZG commitment is
#: the proof's first G1 point; the intent's commitment is ``keccak256(proof[0:64])``.
INPUT_POLYCOMMIT = 1
INPUT_BINDINGS = {INPUT_HASHED: "hashed", INPUT_POLYCOMMIT: "polycommit"}

#: ``ModelInfo.proofModes`` bits, the registry's verification tiers (``IModelRegistry.MODES_*``):
#: proofs at every delivery, proofs on an audit or challenge, and re-execution (a token model on
#: ``TokenMarket``: no verifier, no instances; alone).
MODES_ZK = 1
MODES_OPTIMISTIC = 2
MODES_REEXECUTION = 4

#: ModelInfo's ABI types in declaration order (``IModelRegistry.sol``).
_MODEL_INFO_TYPES = (
    "bytes32",
    "bytes32",
    "address",
    "uint8",
    "uint8",
    "uint8",
    "uint16",
    "uint16",
    "uint8",
    "uint16",
    "uint8",
    "address",
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model (``ModelInfo``): what runs, who verifies it, where the instances sit.

    Attributes:
        onnx_sha256: sha256 of the ONNX file providers run.
        settings_hash: hash of the EZKL settings the verifier was built for.
        verifier: the ``IVerifier`` that checks proofs.
        input_binding: :data:`INPUT_HASHED` or :data:`INPUT_POLYCOMMIT` (keyword only, default
            hashed: records written by hand for mock verifiers keep the historical layout).
        commitment_index: index of the input commitment in the public instances (hashed inputs;
            0 for polycommit).
        output_offset: index of the first output element.
        output_length: number of output elements.
        instance_count: length of the instance vector.
        proof_modes: bitmask of verification tiers (:data:`MODES_ZK` 1, :data:`MODES_OPTIMISTIC`
            2, or :data:`MODES_REEXECUTION` 4 alone: a token model).
        audit_rate_bps: share of optimistic deliveries that must be proven anyway (of a token
            model's deliveries: re-executed).
        batch_size: jobs per proof: 1 for a single-job model, N > 1 for a batch model (settled
            by ``QuoteMarket.deliverBatch``; job i's commitment at ``commitment_index + i``
            (hashed) or in the proof's point i (polycommit), its outputs at ``output_offset +
            output_length * i``; ``instance_count`` is the whole batch's).
        owner: the registrant (set by the registry; ignored on ``register``).
    """

    onnx_sha256: bytes
    settings_hash: bytes
    verifier: str
    # declared in the struct's order (``dataclasses.fields`` and ``astuple`` follow it); keyword
    # only in ``__init__`` so that the positional constructor keeps its historical arguments
    input_binding: int = field(default=INPUT_HASHED, kw_only=True)
    commitment_index: int
    output_offset: int
    output_length: int
    instance_count: int
    proof_modes: int = 3
    audit_rate_bps: int = 0
    batch_size: int = 1
    owner: str = ZERO_ADDRESS

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifier", to_checksum_address(self.verifier))
        object.__setattr__(self, "owner", to_checksum_address(self.owner))
        object.__setattr__(self, "onnx_sha256", bytes(self.onnx_sha256))
        object.__setattr__(self, "settings_hash", bytes(self.settings_hash))

    def to_abi(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> ModelInfo:
        """From the struct's values in declaration order (as ``model()`` returns them)."""
        return cls(**{f.name: v for f, v in zip(fields(cls), values, strict=True)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        """From a mapping with the Solidity names (``onnxSha256``...) or the Python ones."""
        return cls(**{snake(key): value for key, value in data.items()})

    def instances(self, commitment: int, output: Sequence[int]) -> list[int]:
        """The public instances the market hands the verifier for a delivery of ``output``."""
        return market_instances(
            input_binding=self.input_binding,
            commitment_index=self.commitment_index,
            output_offset=self.output_offset,
            instance_count=self.instance_count,
            commitment=commitment,
            output=output,
        )

    def binds_input(self, proof: bytes, commitment: int) -> bool:
        """Whether the market's input check passes (always for hashed inputs: the verifier checks
        the commitment as an instance)."""
        return self.input_binding != INPUT_POLYCOMMIT or polycommit_commitment(proof) == int(commitment)

    def model_id(self, registrant: str) -> bytes:
        """The id ``register`` returns when ``registrant`` registers this record (no RPC)."""
        registrant = to_checksum_address(registrant)
        record = (*astuple(self)[:-1], registrant)
        return keccak(abi_encode(["address", *_MODEL_INFO_TYPES], [registrant, *record]))


def polycommit_commitment(proof: bytes) -> int | None:
    """``uint256(keccak256(proof[0:64]))``: the input commitment of a polycommit proof (the KZG
    commitment of its input column, x and y big-endian), ``None`` for a proof under 64 bytes."""
    if len(proof) < 64:
        return None
    return int.from_bytes(keccak(bytes(proof[:64])), "big")


def market_instances(
    *,
    input_binding: int,
    commitment_index: int,
    output_offset: int,
    instance_count: int,
    commitment: int,
    output: Sequence[int],
) -> list[int]:
    """The instance vector the market builds from a model's layout (``BaseMarket._verify``):
    zeros, the commitment at ``commitment_index`` for a hashed input (none for polycommit, whose
    input is bound by the proof's first point), and the output at ``output_offset``."""
    instances = [0] * int(instance_count)
    if int(input_binding) != INPUT_POLYCOMMIT:
        instances[int(commitment_index)] = int(commitment)
    offset = int(output_offset)
    instances[offset : offset + len(output)] = [int(v) for v in output]
    return instances


class IntStruct:
    """A dataclass of integers only, as its Solidity struct: ``to_abi`` / ``from_abi`` in declaration
    order (``MarketParams``, ``Stats``, ``TokenModelConfig``)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_abi(self) -> tuple[int, ...]:
        return astuple(self)

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Self:
        return cls(*(int(v) for v in values))


@dataclass(frozen=True, slots=True)
class MarketParams(IntStruct):
    """A market's economic parameters (``MarketParams``); see docs/PROTOCOL.md."""

    fee_bps: int
    stake_multiple: int
    challenger_reward_bps: int
    challenge_window: int
    proof_window: int
    max_callback_gas: int
    challenge_bond: int


@dataclass(frozen=True, slots=True)
class DisputeTerms:
    """The dispute terms an optimistic job was posted with (``DisputeTerms``): the owner's later
    parameter changes never reach a live job."""

    challenge_bond: int
    challenge_window: int
    proof_window: int
    challenger_reward_bps: int
    #: the block of the optimistic delivery; its successor's hash draws the audit
    delivered_block: int
    audit_drawn: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> DisputeTerms:
        bond, window, proof_window, reward, block, drawn = values
        return cls(int(bond), int(window), int(proof_window), int(reward), int(block), bool(drawn))


@dataclass(frozen=True, slots=True)
class Operator:
    """A provider's self-declared record in ``Staking`` (``IStaking.Operator``)."""

    endpoint: str
    region: bytes
    hardware_class: bytes
    models: tuple[bytes, ...]
    registered: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Operator:
        endpoint, region, hardware, models, registered = values
        return cls(
            str(endpoint), bytes(region), bytes(hardware), tuple(bytes(m) for m in models), bool(registered)
        )


@dataclass(frozen=True, slots=True)
class Stats(IntStruct):
    """A provider's track record in ``Staking`` (``IStaking.Stats``)."""

    jobs_won: int
    delivered_in_time: int
    expired: int
    slashed: int
