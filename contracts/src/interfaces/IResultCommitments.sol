// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IResultCommitments
/// @notice Result commitments, one concept for every market that hands outputs over off-chain: a provider (or a
/// solver it authorised in Staking) signs EIP-712 `ResultCommitment(bytes32 jobId, bytes32 outputHash)` when the
/// requester gets the output, before the chain has it; anyone holding the signature can have the provider
/// penalised by the job's stake if the output delivered on chain is another. `outputHash` is the market's hash of
/// a delivered output (the quote market: keccak256(abi.encode(uint256[] output)); the token market: keccak256 of
/// the ids, uint32 big-endian each).
interface IResultCommitments {
    /// @notice A provider whose signed result commitment differs from the output it delivered on chain lost
    /// `taken` of its stake to the requester.
    event CommitmentSlashed(
        bytes32 indexed jobId,
        address indexed provider,
        bytes32 committedHash,
        bytes32 deliveredHash,
        uint256 taken
    );

    /// @notice The commitment's signer is neither the job's provider nor a solver it authorised.
    error InvalidCommitmentSigner(address provider, address signer);
    /// @notice The commitment is to the output delivered: nothing to slash.
    error CommitmentMatches(bytes32 jobId);

    /// @notice The EIP-712 digest a provider signs for a result commitment.
    function hashCommitment(bytes32 jobId, bytes32 outputHash) external view returns (bytes32);
}
