// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IVerifier} from "../../src/interfaces/IVerifier.sol";

/// @notice Deterministic stand-in for an EZKL verifier: a proof is valid iff it equals
/// abi.encode(instances), so tests can make valid proofs for exactly one instance vector.
contract MockVerifier is IVerifier {
    enum Mode {
        Honest,
        RejectAll,
        Revert,
        Garbage
    }

    Mode public mode;
    uint256 public calls;
    bytes32 public lastInstancesHash;

    function setMode(Mode m) external {
        mode = m;
    }

    /// @notice The only proof this verifier accepts for `instances`.
    function proofFor(uint256[] memory instances) external pure returns (bytes memory) {
        return abi.encode(instances);
    }

    /// @inheritdoc IVerifier
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool) {
        ++calls;
        lastInstancesHash = keccak256(abi.encode(instances));
        if (mode == Mode.Revert) revert("MockVerifier: revert");
        if (mode == Mode.Garbage) {
            assembly {
                mstore(0, 7)
                return(0, 64)
            }
        }
        if (mode == Mode.RejectAll) return false;
        return keccak256(proof) == keccak256(abi.encode(instances));
    }
}
