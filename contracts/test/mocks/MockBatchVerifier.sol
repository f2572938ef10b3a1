// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IVerifier} from "../../src/interfaces/IVerifier.sol";

/// @notice Stand-in for an EZKL batch verifier: a proof is `points ++ abi.encode(instances)`, valid iff the
/// part after the first `pointBytes` bytes (polycommit: one 64-byte input point per slot; hashed: 0) equals
/// abi.encode(instances). The points are free, as the KZG points are to the market: it only hashes them.
contract MockBatchVerifier is IVerifier {
    uint256 public immutable pointBytes;
    uint256 public calls;

    constructor(uint256 pointBytes_) {
        pointBytes = pointBytes_;
    }

    /// @notice The proof this verifier accepts for `instances` with input points `points`.
    function proofFor(bytes memory points, uint256[] memory instances) external view returns (bytes memory) {
        require(points.length == pointBytes, "points");
        return abi.encodePacked(points, abi.encode(instances));
    }

    /// @inheritdoc IVerifier
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool) {
        ++calls;
        if (proof.length < pointBytes) return false;
        return keccak256(proof[pointBytes:]) == keccak256(abi.encode(instances));
    }
}
