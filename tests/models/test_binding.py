"""The input binding on the Python side, without EZKL: instance vectors and proof commitments."""

from __future__ import annotations

import dataclasses

from eth_utils import keccak

from tender.chain import INPUT_HASHED, INPUT_POLYCOMMIT, ModelInfo, market_instances, polycommit_commitment


def _info(**changes: int) -> ModelInfo:
    base = ModelInfo(b"\x01" * 32, b"\x02" * 32, "0x" + "11" * 20, 0, 1, 3, 4)
    return dataclasses.replace(base, **changes)


def test_instances_follow_the_binding() -> None:
    hashed = _info()
    assert hashed.input_binding == INPUT_HASHED  # the keyword-only default
    assert hashed.instances(42, [7, 8, 9]) == [42, 7, 8, 9]
    polycommit = _info(input_binding=INPUT_POLYCOMMIT, output_offset=0, instance_count=3)
    assert polycommit.instances(42, [7, 8, 9]) == [7, 8, 9]
    assert market_instances(
        input_binding=INPUT_POLYCOMMIT,
        commitment_index=0,
        output_offset=1,
        instance_count=4,
        commitment=42,
        output=[7, 8, 9],
    ) == [0, 7, 8, 9]


def test_polycommit_commitment_is_keccak_of_the_first_point() -> None:
    proof = bytes(range(64)) + b"\xff" * 100
    commitment = int.from_bytes(keccak(bytes(range(64))), "big")
    assert polycommit_commitment(proof) == commitment
    assert polycommit_commitment(proof[:63]) is None
    polycommit = _info(input_binding=INPUT_POLYCOMMIT, output_offset=0, instance_count=3)
    assert polycommit.binds_input(proof, commitment)
    assert not polycommit.binds_input(proof, commitment + 1)
    assert not polycommit.binds_input(proof[:63], commitment)
    assert _info().binds_input(b"", 5)  # hashed: the verifier checks the instance


def test_abi_order_and_model_id() -> None:
    info = _info(input_binding=INPUT_POLYCOMMIT, output_offset=0, instance_count=3)
    values = info.to_abi()
    assert values[3] == INPUT_POLYCOMMIT  # right after the verifier, as in IModelRegistry.sol
    assert ModelInfo.from_abi(values) == info
    assert info.model_id("0x" + "22" * 20) != _info(output_offset=0, instance_count=3).model_id(
        "0x" + "22" * 20
    )
