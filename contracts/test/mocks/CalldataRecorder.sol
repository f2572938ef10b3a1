// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A verifier that accepts every proof and records the hash of the exact call data it received,
/// so tests can check the market's hand-built `verifyProof` call byte for byte (padding included).
contract CalldataRecorder {
    bytes32 public lastCalldataHash;
    uint256 public calls;

    fallback(bytes calldata) external returns (bytes memory) {
        lastCalldataHash = keccak256(msg.data);
        ++calls;
        return abi.encode(true);
    }
}
