// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IVerifier
/// @notice The narrow seam between the market and a proof system. The signature is exactly that of
/// EZKL's generated `Halo2Verifier`, so an EZKL verifier is registered directly; another proof system
/// is a new adapter, not a change to the market.
interface IVerifier {
    /// @notice Checks `proof` against the public `instances`.
    /// @param proof The proof bytes, as produced by the prover.
    /// @param instances The public instance vector (field elements), built by the market from the
    /// model's layout, the intent's input commitment and the delivered output.
    /// @return True iff the proof verifies. Verifiers may also revert on malformed proofs; the market
    /// treats a revert as a rejection.
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool);
}
