// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ITenderConsumer
/// @notice Implemented by requester contracts that want the result pushed to them on settlement.
interface ITenderConsumer {
    /// @notice Called by the market once a job settles, with `callbackGasLimit` gas. A revert here
    /// is caught (the market emits `CallbackFailed`) and never blocks the provider's payment. The
    /// market is locked against reentrancy during the call.
    /// @param jobId The settled job.
    /// @param output The delivered output (field elements), verified or unchallenged.
    function onTenderResult(bytes32 jobId, uint256[] calldata output) external;
}
