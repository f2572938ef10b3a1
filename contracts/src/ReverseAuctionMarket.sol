// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BaseMarket} from "./BaseMarket.sol";
import {IMarket} from "./interfaces/IMarket.sol";
import {IReverseAuctionMarket} from "./interfaces/IReverseAuctionMarket.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {AUCTION_REVERSE, Bid, Intent, JobRecord, JobState, MarketParams} from "./MarketStructs.sol";

/// @title ReverseAuctionMarket
/// @notice Open scoring reverse auction with second-score payment. Only the pricing and winner
/// resolution live here; escrow, delivery and disputes are `BaseMarket`'s.
contract ReverseAuctionMarket is BaseMarket, IReverseAuctionMarket {
    /// @dev The two best bids of distinct providers, as bid and award read them. Stored in two slots,
    /// (best, bestPrice) and (runner, runnerPrice), with the latencies in the job's own slots (`JobRecord.latency`
    /// while Open, `JobRecord.runnerLatency`), which a bid reads anyway. `post` writes non-zero sentinels into the
    /// two book slots (an empty side is address 0 with price 1), so every bid rewrites slots that are already
    /// non-zero (~5k gas a slot instead of ~22k): the requester prepays the book's storage.
    struct BidBook {
        address best;
        uint96 bestPrice;
        address runner;
        uint96 runnerPrice;
        uint32 bestLatency;
        uint32 runnerLatency;
    }

    /// @dev The stored part of a `BidBook`.
    struct BookSlots {
        address best;
        uint96 bestPrice;
        address runner;
        uint96 runnerPrice;
    }

    /// @dev The price stored beside address 0 on an empty side of the book (any non-zero value).
    uint96 private constant _EMPTY_PRICE = 1;

    mapping(bytes32 jobId => BookSlots) private _books;

    constructor(
        IERC20 token_,
        IModelRegistry registry_,
        IStaking staking_,
        address treasury_,
        address owner_,
        MarketParams memory params_
    ) BaseMarket(token_, registry_, staking_, treasury_, owner_, params_) {}

    /// @inheritdoc IReverseAuctionMarket
    // Staking is this market's immutable, trusted counterpart and `reserve` makes no call out (and a failed
    // reserve reverts the whole bid, book included).
    function bid(bytes32 jobId, Bid calldata b) external whenNotPaused {
        // no reentrancy guard: bid only calls Staking (trusted, no call backs)
        JobRecord storage j = _job(jobId);
        if (j.state != JobState.Open) revert InvalidState(jobId, j.state);
        address provider = b.provider;
        uint256 price = b.price;
        uint32 latency = b.latency;
        // the book's two slots, each read once as a word (`BookSlots`: the address in the low 160 bits, the
        // price above) and written only where the bid changes it
        uint256 slotA = _bookSlot(jobId);
        uint256 entryA;
        uint256 entryB;
        // score = price * pw + latency * lw (`_score`, its factors computed once)
        uint256 pw;
        uint256 lw;
        {
            uint256 maxPrice = j.maxPrice;
            {
                uint256 maxLatency;
                uint256 weight;
                {
                    // a bid reads two job slots: slot 1 (state, deadline, maxPrice, the best's latency) and
                    // slot 3 (auction end, weight, stake terms, the runner-up's latency)
                    (uint40 end, uint16 w) = (j.auctionEnd, j.priceWeightBps);
                    if (block.timestamp >= end) revert AuctionClosed(jobId, end);
                    // the provider's clock starts at the award, at the earliest at auctionEnd
                    maxLatency = j.deadline - end;
                    weight = w;
                }
                _requireAuthorized(provider);
                if (price == 0) revert ZeroPrice();
                if (price > maxPrice) revert BidAboveMaxPrice(price, maxPrice);
                if (latency == 0) revert ZeroLatency();
                if (latency > maxLatency) revert LatencyTooLong(latency, maxLatency);
                unchecked {
                    // the bounds of `_score`: no overflow
                    (pw, lw) = (weight * maxLatency, (BPS - weight) * maxPrice);
                }
            }
            (entryA, entryB) = (_sload(slotA), _sload(slotA + 1));
        }
        (uint256 score, uint8 rank) =
            _place(j, slotA, entryA, entryB, _entry(provider, price), latency, pw, lw);
        address pushedOut = _reserve(j, provider, entryA, entryB);
        emit BidPlaced(jobId, provider, msg.sender, price, latency, score, rank, pushedOut);
    }

    /// @inheritdoc IReverseAuctionMarket
    function award(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _job(jobId);
        if (j.state != JobState.Open) revert InvalidState(jobId, j.state);
        _resolve(jobId, j);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc BaseMarket
    function auctionType() public pure override(BaseMarket, IMarket) returns (uint8) {
        return AUCTION_REVERSE;
    }

    /// @inheritdoc IReverseAuctionMarket
    function bestBid(bytes32 jobId) external view returns (Bid memory) {
        BidBook memory book = _book(jobId, _job(jobId));
        address best = book.best;
        return best == address(0) ? Bid(address(0), 0, 0) : Bid(best, book.bestPrice, book.bestLatency);
    }

    /// @inheritdoc IReverseAuctionMarket
    function runnerUp(bytes32 jobId) external view returns (Bid memory) {
        BidBook memory book = _book(jobId, _job(jobId));
        address runner = book.runner;
        return
            runner == address(0) ? Bid(address(0), 0, 0) : Bid(runner, book.runnerPrice, book.runnerLatency);
    }

    /// @inheritdoc IReverseAuctionMarket
    function scoreOf(bytes32 jobId, uint256 price, uint32 latency) external view returns (uint256) {
        JobRecord storage j = _job(jobId);
        if (j.state == JobState.None || price > type(uint96).max) return 0;
        return _score(j.priceWeightBps, price, latency, j.maxPrice, j.deadline - j.auctionEnd);
    }

    /// @inheritdoc IReverseAuctionMarket
    function clearingPrice(bytes32 jobId) external view returns (uint256) {
        JobRecord storage j = _job(jobId);
        BidBook memory book = _book(jobId, j);
        if (book.best == address(0)) return 0;
        return _clearingPrice(book, j);
    }

    // ------------------------------------------------------------------ hooks

    /// @inheritdoc BaseMarket
    function _checkPricing(Intent calldata intent) internal pure override {
        if (intent.startPrice != 0) revert BadStartPrice(intent.startPrice, intent.maxPrice);
    }

    /// @inheritdoc BaseMarket
    function _opened(bytes32 jobId) internal override {
        _books[jobId] = BookSlots(address(0), _EMPTY_PRICE, address(0), _EMPTY_PRICE);
    }

    /// @inheritdoc BaseMarket
    function _awardOnDelivery(bytes32 jobId, JobRecord storage j) internal override {
        _resolve(jobId, j);
    }

    /// @inheritdoc BaseMarket
    function _refundable(bytes32 jobId, JobRecord storage j) internal view override returns (bool) {
        // with bids, only once no award is possible any more
        return _books[jobId].best == address(0) || block.timestamp >= j.deadline;
    }

    /// @inheritdoc BaseMarket
    function _released(bytes32 jobId, JobRecord storage j) internal override {
        _releaseBook(_book(jobId, j), j);
    }

    /// @inheritdoc BaseMarket
    function _failover(bytes32 jobId, JobRecord storage j, address from) internal override returns (bool) {
        BookSlots storage book = _books[jobId];
        address runner = book.runner;
        if (runner == address(0)) return false;
        uint96 price = book.runnerPrice;
        uint32 latency = j.runnerLatency;
        // the runner-up is used at most once; it lost the auction, so it is not penalised for having moved
        // its stake on
        (book.runner, book.runnerPrice, j.runnerLatency) = (address(0), 0, 0);
        if (!_tryAward(jobId, j, runner, price, price, latency, false)) return false;
        emit FailedOver(jobId, from, runner, price);
        return true;
    }

    // ------------------------------------------------------------------ private

    /// @dev Awards the best bid at the second-score price; if it has no longer its promised time or cannot
    /// lock its stake any more (penalised), the runner-up at its own bid; if neither can, refunds. Never
    /// reverts for stake or time reasons.
    function _resolve(bytes32 jobId, JobRecord storage j) private {
        _requireAwardable(jobId, j);
        BidBook memory book = _book(jobId, j);
        if (book.best == address(0)) revert NoBids(jobId);
        _releaseBook(book, j);
        uint256 price = _clearingPrice(book, j);
        if (_tryAward(jobId, j, book.best, book.bestPrice, price, book.bestLatency, true)) return;
        if (book.runner != address(0)) {
            // the runner-up becomes the provider: it is no failover candidate any more
            BookSlots storage stored = _books[jobId];
            (stored.runner, stored.runnerPrice, j.runnerLatency) = (address(0), 0, 0);
            if (_tryAward(
                    jobId, j, book.runner, book.runnerPrice, book.runnerPrice, book.runnerLatency, true
                )) {
                return;
            }
        }
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    /// @dev A provider on the book (`entryA`, `entryB` as read before the bid) holds a reservation of the job's
    /// largest lock; a newcomer reserves one (reverts InsufficientStake: the whole bid with it) and, as it pushes
    /// the runner-up (if any) off the book, releases the runner-up's in the same call, which it returns
    /// (`pushedOut`, 0 if none). Staking is trusted and makes no calls back; it logs neither: the bid's event does.
    function _reserve(JobRecord storage j, address provider, uint256 entryA, uint256 entryB)
        private
        returns (address pushedOut)
    {
        if (provider == address(uint160(entryA)) || provider == address(uint160(entryB))) {
            return address(0);
        }
        pushedOut = address(uint160(entryB));
        _staking.reserve(provider, pushedOut, _stakeRequired(j, j.maxPrice));
    }

    /// @dev Releases the stake the book's bids reserved (once per job: at its award or its refund). The award
    /// then locks the winner's stake at most that reservation (its price is at most maxPrice), so it cannot
    /// fail for want of stake.
    function _releaseBook(BidBook memory book, JobRecord storage j) private {
        if (book.best == address(0)) return;
        uint256 reserved = _stakeRequired(j, j.maxPrice);
        _staking.release(book.best, reserved);
        if (book.runner != address(0)) _staking.release(book.runner, reserved);
    }

    /// @dev Enters a bid (`entry`: its provider and price as a book slot holds them) into the book read as
    /// (`entryA`, `entryB`) from `slotA` and the next slot: the leader if it scores lower than the best, else the
    /// runner-up if it scores lower than that. Writes only the slots it changes. Score = price * pw + latency * lw.
    function _place(
        JobRecord storage j,
        uint256 slotA,
        uint256 entryA,
        uint256 entryB,
        uint256 entry,
        uint32 latency,
        uint256 pw,
        uint256 lw
    ) private returns (uint256 score, uint8 rank) {
        unchecked {
            // the bounds of `_score`: no overflow
            score = (entry >> 160) * pw + latency * lw;
        }
        rank = 1;
        address best = address(uint160(entryA));
        if (best == address(0)) {
            _sstore(slotA, entry);
            j.latency = latency;
            return (score, rank);
        }
        uint32 bestLatency = j.latency;
        uint256 bestScore;
        unchecked {
            bestScore = (entryA >> 160) * pw + bestLatency * lw;
        }
        if (address(uint160(entry)) == best) {
            // the leader improves its own bid; the runner-up (another provider) stays
            if (score >= bestScore) revert BidNotBetter(score, bestScore);
            _sstore(slotA, entry);
            j.latency = latency;
        } else if (score < bestScore) {
            // a new leader: the old one becomes the runner-up (the runner-up's old bid is worse)
            _sstore(slotA + 1, entryA);
            _sstore(slotA, entry);
            j.latency = latency;
            j.runnerLatency = bestLatency;
        } else {
            if (address(uint160(entryB)) != address(0)) {
                uint256 runnerScore;
                unchecked {
                    runnerScore = (entryB >> 160) * pw + j.runnerLatency * lw;
                }
                if (score >= runnerScore) revert BidNotBetter(score, runnerScore);
            }
            _sstore(slotA + 1, entry);
            j.runnerLatency = latency;
            rank = 2;
        }
    }

    /// @dev The first of the job's two book slots (`_books[jobId]`; the runner-up's is the next).
    function _bookSlot(bytes32 jobId) private view returns (uint256 slot) {
        BookSlots storage stored = _books[jobId];
        assembly ("memory-safe") {
            slot := stored.slot
        }
    }

    /// @dev A book side as its slot holds it: `price` (<= maxPrice < 2**96, checked by the bid) above `who`.
    function _entry(address who, uint256 price) private pure returns (uint256) {
        return (price << 160) | uint160(who);
    }

    function _sload(uint256 slot) private view returns (uint256 word) {
        assembly ("memory-safe") {
            word := sload(slot)
        }
    }

    function _sstore(uint256 slot, uint256 word) private {
        assembly ("memory-safe") {
            sstore(slot, word)
        }
    }

    /// @dev The job's bid book: its two slots and the latencies kept in the job's slots.
    function _book(bytes32 jobId, JobRecord storage j) private view returns (BidBook memory book) {
        BookSlots storage stored = _books[jobId];
        (book.best, book.bestPrice, book.runner, book.runnerPrice) =
        (stored.best, stored.bestPrice, stored.runner, stored.runnerPrice);
        (book.bestLatency, book.runnerLatency) = (j.latency, j.runnerLatency);
    }

    /// @dev The price at which the best bid's score would tie the runner-up's, floor-rounded, clamped to
    /// [bestPrice, maxPrice]; the best's own price without a runner-up.
    function _clearingPrice(BidBook memory book, JobRecord storage j) private view returns (uint256 price) {
        price = book.bestPrice;
        if (book.runner == address(0)) return price;
        uint256 weight = j.priceWeightBps;
        uint256 maxPrice = j.maxPrice;
        uint256 maxLatency = j.deadline - j.auctionEnd;
        uint256 runnerScore = _score(weight, book.runnerPrice, book.runnerLatency, maxPrice, maxLatency);
        uint256 latencyPart = (BPS - weight) * book.bestLatency * maxPrice;
        // runnerScore > bestScore >= latencyPart, so this does not underflow
        uint256 tie = (runnerScore - latencyPart) / (weight * maxLatency);
        if (tie > maxPrice) tie = maxPrice;
        if (tie > price) price = tie;
    }

    /// @dev weight*price*maxLatency + (10000-weight)*latency*maxPrice. Lower is better.
    function _score(uint256 weight, uint256 price, uint256 latency, uint256 maxPrice, uint256 maxLatency)
        private
        pure
        returns (uint256)
    {
        unchecked {
            // weight <= 1e4 < 2**14, price and maxPrice < 2**96, latency < 2**32, maxLatency < 2**40:
            // each product < 2**150, the sum < 2**151
            return weight * price * maxLatency + (BPS - weight) * latency * maxPrice;
        }
    }
}
