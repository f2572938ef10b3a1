// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Intent} from "../MarketStructs.sol";

/// @title IntentLib
/// @notice EIP-712 struct hash of an `Intent`. Standard EIP-712 encoding: `bytes inputLocation` is
/// hashed with keccak256, every other member is one 32-byte word (bytes2 left-aligned). The type string
/// is reproduced in docs/PROTOCOL.md and must match the Python signer (eth-account `sign_typed_data`).
library IntentLib {
    bytes internal constant INTENT_TYPE = "Intent(address requester,bytes32 modelId,uint256 inputCommitment,"
        "bytes inputLocation,uint256 maxPrice,uint256 startPrice,uint8 auctionType,uint32 auctionWindow,"
        "uint64 deadline,uint8 proofMode,uint256 minStake,bytes2 region,uint16 priceWeightBps,"
        "bool allowFailover,uint32 callbackGasLimit,uint256 nonce,uint64 expiry)";

    bytes32 internal constant INTENT_TYPEHASH = keccak256(INTENT_TYPE);

    /// @notice hashStruct(intent). Encoded in two halves because 18 words exceed the legacy pipeline's
    /// stack; abi.encode of static words is plain concatenation, so the result is the standard encoding.
    function hash(Intent calldata intent) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                abi.encode(
                    INTENT_TYPEHASH,
                    intent.requester,
                    intent.modelId,
                    intent.inputCommitment,
                    keccak256(intent.inputLocation),
                    intent.maxPrice,
                    intent.startPrice,
                    intent.auctionType,
                    intent.auctionWindow
                ),
                abi.encode(
                    intent.deadline,
                    intent.proofMode,
                    intent.minStake,
                    intent.region,
                    intent.priceWeightBps,
                    intent.allowFailover,
                    intent.callbackGasLimit,
                    intent.nonce,
                    intent.expiry
                )
            )
        );
    }
}
