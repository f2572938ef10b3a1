// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IMarket} from "./IMarket.sol";
import {AuctionTerms, Bid, JobTerms} from "../MarketStructs.sol";

/// @title IReverseAuctionMarket
/// @notice Open scoring reverse auction: providers (or their solvers) bid price and latency during the
/// window; the lowest score wins and is paid the second-score price.
///   score = priceWeightBps * price * maxLatency + (10000 - priceWeightBps) * latency * maxPrice,
///   maxLatency = deadline - auctionEnd. Lower is better; ties keep the earlier bid.
/// While a job is Open the market stores only the hash of its terms: `bid`, `award`, `refund` and the auction
/// views take them back as calldata (`AuctionTerms`, and `JobTerms` where the job's record is written), rebuilt
/// from `IntentPosted`; terms that do not match revert `TermsMismatch`.
interface IReverseAuctionMarket is IMarket {
    /// @notice A bid entered the book. `rank` is 1 if it leads, 2 if it is the runner-up. The book's stake
    /// reservations are logged here, not by Staking: a provider new to the book reserved the job's largest lock,
    /// `max(minStake, maxPrice * stakeMultiple)`, and `pushedOut` (0 if none), the runner-up this bid pushed off
    /// the book, got its reservation back in the same call. `Awarded` / `Refunded` release the book's. The bid's
    /// score is `scoreOf(terms, price, latency)`.
    event BidPlaced(
        bytes32 indexed jobId,
        address indexed provider,
        address indexed solver,
        uint256 price,
        uint32 latency,
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
    function bid(bytes32 jobId, AuctionTerms calldata terms, Bid calldata bid) external;

    /// @notice Ends the auction (anyone, auctionEnd <= now < deadline): awards the best bidder at the
    /// second-score price (cut to what its lockable stake covers at stakeMultiple, never below its bid; the
    /// lock is max(minStake, price * stakeMultiple)), or, if it no longer has its promised latency before the
    /// deadline or cannot lock its bid's stake (then penalised), the runner-up at its own price on the same
    /// conditions, or refunds if neither can. The award writes the job's record from `terms` and `job`.
    function award(bytes32 jobId, AuctionTerms calldata terms, JobTerms calldata job) external;

    /// @notice Returns the escrow of a job that was never awarded (anyone, from auctionEnd on): with no bid, or
    /// once the deadline has passed; releases the stake the book's bids reserved.
    function refund(bytes32 jobId, AuctionTerms calldata terms, JobTerms calldata job) external;

    function bestBid(bytes32 jobId) external view returns (Bid memory);
    function runnerUp(bytes32 jobId) external view returns (Bid memory);
    /// @notice The score of a bid of `price` and `latency` under `terms` (0 if the price exceeds 96 bits or the
    /// terms are not a job's: deadline <= auctionEnd or priceWeightBps > 10000).
    function scoreOf(AuctionTerms calldata terms, uint256 price, uint32 latency)
        external
        pure
        returns (uint256);
    /// @notice The price the current best would be paid if awarded now (0 without bids); the job must be Open.
    function clearingPrice(bytes32 jobId, AuctionTerms calldata terms) external view returns (uint256);
}
