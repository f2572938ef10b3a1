// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarket} from "./IMarket.sol";
import {Bid} from "../MarketStructs.sol";

/// @title IReverseAuctionMarket
/// @notice Open scoring reverse auction: providers (or their solvers) bid price and latency during the
/// window; the lowest score wins and is paid the second-score price.
///   score = priceWeightBps * price * maxLatency + (10000 - priceWeightBps) * latency * maxPrice,
///   maxLatency = deadline - auctionEnd. Lower is better; ties keep the earlier bid.
interface IReverseAuctionMarket is IMarket {
    /// @notice A bid entered the book. `rank` is 1 if it leads, 2 if it is the runner-up. The book's stake
    /// reservations are logged here, not by Staking: a provider new to the book reserved the job's largest lock,
    /// `max(minStake, maxPrice * stakeMultiple)`, and `pushedOut` (0 if none), the runner-up this bid pushed off
    /// the book, got its reservation back in the same call. `Awarded` / `Refunded` release the book's.
    event BidPlaced(
        bytes32 indexed jobId,
        address indexed provider,
        address indexed solver,
        uint256 price,
        uint32 latency,
        uint256 score,
        uint8 rank,
        address pushedOut
    );

    error ZeroPrice();
    error BidAboveMaxPrice(uint256 bid, uint256 maxPrice);
    /// @notice The bid does not beat the score it has to beat (the best for its own provider or a new
    /// leader, the runner-up otherwise).
    error BidNotBetter(uint256 score, uint256 scoreToBeat);
    error NoBids(bytes32 jobId);

    /// @notice Places a bid for `bid.provider` (caller: the provider or an authorised solver). The
    /// provider must have available stake >= max(minStake, price * stakeMultiple) and
    /// auctionEnd + latency <= deadline, latency <= MAX_BOOK_LATENCY (2**15 - 1 s: a book side is one word; a reverse
    /// intent's maxPrice is likewise at most MAX_BOOK_PRICE, 2**80 - 1, checked at post). A provider's new bid
    /// replaces its old one; a bid from another provider must beat the runner-up (and leads if it beats the best).
    function bid(bytes32 jobId, Bid calldata bid) external;

    /// @notice Ends the auction (anyone, auctionEnd <= now < deadline): awards the best bidder at the
    /// second-score price (cut to what its lockable stake covers at stakeMultiple, never below its bid; the
    /// lock is max(minStake, price * stakeMultiple)), or, if it no longer has its promised latency before the
    /// deadline or cannot lock its bid's stake (then penalised), the runner-up at its own price on the same
    /// conditions, or refunds if neither can.
    function award(bytes32 jobId) external;

    function bestBid(bytes32 jobId) external view returns (Bid memory);
    function runnerUp(bytes32 jobId) external view returns (Bid memory);
    /// @notice The score of a bid for a job (0 if the job is unknown).
    function scoreOf(bytes32 jobId, uint256 price, uint32 latency) external view returns (uint256);
    /// @notice The price the current best would be paid if awarded now.
    function clearingPrice(bytes32 jobId) external view returns (uint256);
}
