// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarket} from "./IMarket.sol";

/// @title IDutchAuctionMarket
/// @notice Ascending-price (for the provider) Dutch auction: the offered price rises linearly from
/// startPrice at posting to maxPrice at the window's end; the first provider to `fill` takes the job
/// at the current price in one transaction.
interface IDutchAuctionMarket is IMarket {
    /// @notice Awards the job to `provider` (caller: the provider or an authorised solver) at the current
    /// price, locking max(minStake, price * stakeMultiple). Needs now + latency <= deadline.
    function fill(bytes32 jobId, address provider, uint32 latency) external returns (uint256 price);

    /// @notice Returns the escrow of a job nobody filled, once its window has ended (anyone).
    function refund(bytes32 jobId) external;

    /// @notice The price a fill would get now (maxPrice after the window; 0 for unknown jobs).
    function currentPrice(bytes32 jobId) external view returns (uint256);
}
