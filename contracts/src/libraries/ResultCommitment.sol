// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ResultCommitment
/// @notice The EIP-712 struct hash of a result commitment (`IResultCommitments`); each market hashes it into its
/// own domain.
library ResultCommitment {
    bytes32 internal constant TYPEHASH = keccak256("ResultCommitment(bytes32 jobId,bytes32 outputHash)");

    function structHash(bytes32 jobId, bytes32 outputHash) internal pure returns (bytes32) {
        return keccak256(abi.encode(TYPEHASH, jobId, outputHash));
    }
}
