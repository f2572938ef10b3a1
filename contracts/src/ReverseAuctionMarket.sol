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
    /// @dev The two best bids of distinct providers, as award and the views read them. Stored in two slots, each a
    /// side of the book holding a bid's (provider, price), with the latencies in the job's own slots, which a bid
    /// reads anyway: the first slot's in `JobRecord.latency` (slot 1) while Open, the second's in
    /// `JobRecord.secondLatency` (slot 3). Which side leads is not stored but read from the two scores (lower
    /// leads); a tie goes to the second slot iff `JobRecord.secondLeads`, the bit its bid wrote beside its latency.
    /// So a bid writes only the side it takes (its own, the runner-up's it pushes out, or the empty one) and that
    /// side's latency slot, never both sides, whichever way the lead changes. The award puts the book back in
    /// order (best first, the runner-up and its latency second) where the second slot leads, so that a failover
    /// reads the runner-up there. `post` writes non-zero sentinels into the two book slots (an empty side is
    /// address 0 with price 1), so every bid rewrites slots that are already non-zero (~5k gas a slot instead of
    /// ~22k): the requester prepays the book's storage. The first bid takes the first slot, which is empty only
    /// while the book is.
    struct BidBook {
        address best;
        uint96 bestPrice;
        address runner;
        uint96 runnerPrice;
        uint32 bestLatency;
        uint32 runnerLatency;
    }

    /// @dev The stored part of a `BidBook`, in order from the award on (while Open: the first and the second
    /// slot, either leading).
    struct BookSlots {
        address best;
        uint96 bestPrice;
        address runner;
        uint96 runnerPrice;
    }

    /// @dev The price stored beside address 0 on an empty side of the book (any non-zero value).
    uint96 private constant _EMPTY_PRICE = 1;

    // Bit offsets of the fields a bid reads in the job's slot 1 and slot 3 words (`JobRecord`'s layout).
    uint256 private constant _LATENCY = 8; // slot 1: after the state
    uint256 private constant _DEADLINE = 120; // slot 1: after latency, awardedAt, deliveredAt
    uint256 private constant _MAX_PRICE = 160; // slot 1
    uint256 private constant _AUCTION_END = 136; // slot 3: after minStake, postedAt
    uint256 private constant _STAKE_MULTIPLE = 176; // slot 3
    uint256 private constant _WEIGHT = 192; // slot 3: priceWeightBps
    uint256 private constant _SECOND_LATENCY = 216; // slot 3: after allowFailover
    uint256 private constant _SECOND_LEADS = 248; // slot 3

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
        // a bid reads two job slots, each once as a word: slot 1 (state, the first book slot's latency,
        // deadline, maxPrice) and slot 3 (stake terms, auction end, weight, the second slot's latency and bit)
        uint256 slot1;
        {
            JobRecord storage j = _job(jobId);
            assembly ("memory-safe") {
                slot1 := add(j.slot, 1)
            }
        }
        uint256 slotA = _bookSlot(jobId);
        uint256 score;
        uint256 side;
        uint8 rank;
        bool newcomer;
        address pushedOut;
        uint256 reserved;
        {
            uint256 w1 = _sload(slot1);
            if (uint8(w1) != uint8(JobState.Open)) revert InvalidState(jobId, JobState(uint8(w1)));
            uint256 w3 = _sload(slot1 + 2);
            score = _checkBid(jobId, b, w1, w3);
            (side, rank, newcomer, pushedOut) = _place(slotA, w1, w3, b.provider, score);
            if (newcomer) reserved = _reservation(w1, w3);
        }
        _take(slotA, slot1, side, rank, _entry(b.provider, b.price), b.latency);
        // a newcomer reserves the job's largest lock (reverts InsufficientStake: the whole bid with it) and
        // releases the runner-up's it pushed off the book in the same call
        if (newcomer) _staking.reserve(b.provider, pushedOut, reserved);
        emit BidPlaced(jobId, b.provider, msg.sender, b.price, b.latency, score, rank, pushedOut);
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
        uint32 latency = j.secondLatency;
        // the runner-up is used at most once; it lost the auction, so it is not penalised for having moved
        // its stake on
        (book.runner, book.runnerPrice, j.secondLatency) = (address(0), 0, 0);
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
        BookSlots storage stored = _books[jobId];
        if (book.best != stored.best) {
            // the second slot leads: the book back in order (the best first, the runner-up and its latency
            // second), as a failover and the views after the award read it
            (stored.best, stored.bestPrice, stored.runner, stored.runnerPrice) =
            (book.best, book.bestPrice, book.runner, book.runnerPrice);
            (j.latency, j.secondLatency, j.secondLeads) = (book.bestLatency, book.runnerLatency, false);
        }
        _releaseBook(book, j);
        uint256 price = _clearingPrice(book, j);
        if (_tryAward(jobId, j, book.best, book.bestPrice, price, book.bestLatency, true)) return;
        if (book.runner != address(0)) {
            // the runner-up becomes the provider: it is no failover candidate any more
            (stored.runner, stored.runnerPrice, j.secondLatency) = (address(0), 0, 0);
            if (_tryAward(
                    jobId, j, book.runner, book.runnerPrice, book.runnerPrice, book.runnerLatency, true
                )) {
                return;
            }
        }
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    /// @dev Writes a bid (`entry`, `latency`) into the side of the book it takes: `side` 0, the first slot `slotA`
    /// and its latency in the job's slot 1 (`slot1`); 1, the next slot and its latency and the lead bit (set iff
    /// `rank` is 1) in slot 3. Two slot writes, whichever way the lead changes (the job's slot read again: warm).
    function _take(uint256 slotA, uint256 slot1, uint256 side, uint8 rank, uint256 entry, uint32 latency) private {
        if (side == 0) {
            _sstore(slotA, entry);
            uint256 w1 = _sload(slot1);
            _sstore(slot1, (w1 & ~(uint256(type(uint32).max) << _LATENCY)) | (uint256(latency) << _LATENCY));
        } else {
            _sstore(slotA + 1, entry);
            uint256 w3 = _sload(slot1 + 2);
            uint256 leads = rank == 1 ? 1 << _SECOND_LEADS : 0;
            _sstore(slot1 + 2, (w3 & type(uint216).max) | (uint256(latency) << _SECOND_LATENCY) | leads);
        }
    }

    /// @dev The stake a bid reserves, from the job's slot 1 (`w1`) and slot 3 (`w3`) words: `_stakeRequired` at
    /// maxPrice, max(minStake, maxPrice * stakeMultiple), the job's largest lock.
    function _reservation(uint256 w1, uint256 w3) private pure returns (uint256 required) {
        // maxPrice < 2**96, stakeMultiple < 2**16: no overflow
        required = (w1 >> _MAX_PRICE) * uint16(w3 >> _STAKE_MULTIPLE);
        uint256 minStake = uint96(w3);
        if (required < minStake) required = minStake;
        if (required > type(uint96).max) revert ValueTooLarge(required, type(uint96).max);
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

    /// @dev Checks a bid against the job's slot 1 (`w1`) and slot 3 (`w3`) words: the auction running, the sender
    /// authorised, 0 < price <= maxPrice, 0 < latency <= maxLatency. Returns its score (`_score`).
    function _checkBid(bytes32 jobId, Bid calldata b, uint256 w1, uint256 w3)
        private
        view
        returns (uint256 score)
    {
        uint256 maxPrice = w1 >> _MAX_PRICE;
        (address provider, uint256 price, uint32 latency) = (b.provider, b.price, b.latency);
        uint256 end = uint40(w3 >> _AUCTION_END);
        if (block.timestamp >= end) revert AuctionClosed(jobId, uint40(end));
        // the provider's clock starts at the award, at the earliest at auctionEnd (< deadline: post)
        uint256 maxLatency = uint40(w1 >> _DEADLINE) - end;
        _requireAuthorized(provider);
        if (price == 0) revert ZeroPrice();
        if (price > maxPrice) revert BidAboveMaxPrice(price, maxPrice);
        if (latency == 0) revert ZeroLatency();
        if (latency > maxLatency) revert LatencyTooLong(latency, maxLatency);
        (uint256 pw, uint256 lw) = _factors(w1, w3);
        unchecked {
            // the bounds of `_score`: no overflow
            score = price * pw + latency * lw;
        }
    }

    /// @dev The factors of a bid's score from the job's slot 1 and 3 words: score = price * pw + latency * lw,
    /// pw = weight * maxLatency, lw = (10000 - weight) * maxPrice (`_score`).
    function _factors(uint256 w1, uint256 w3) private pure returns (uint256 pw, uint256 lw) {
        unchecked {
            // the bounds of `_score`: no overflow; deadline > auctionEnd (post)
            uint256 weight = uint16(w3 >> _WEIGHT);
            (pw, lw) = (weight * (uint40(w1 >> _DEADLINE) - uint40(w3 >> _AUCTION_END)), (BPS - weight) * (w1 >> _MAX_PRICE));
        }
    }

    /// @dev Where a bid (`provider`, scoring `score`) goes in the book at `slotA` (the first side; the second is the
    /// next slot), the job's slot 1 and 3 words `w1`, `w3` holding the sides' latencies and the second's bit: the
    /// leader's side if it is the leader improving its bid, else the runner-up's (or the empty) side, as the leader
    /// if it scores lower than the best, else as the runner-up if it scores lower than that. Returns the side (0
    /// first, 1 second), the rank, whether the provider is new to the book (`newcomer`: it reserves stake) and the
    /// runner-up it pushes off the book (0 if none). A tie keeps the leader.
    function _place(uint256 slotA, uint256 w1, uint256 w3, address provider, uint256 score)
        private
        view
        returns (uint256 side, uint8 rank, bool newcomer, address pushedOut)
    {
        uint256 entryA = _sload(slotA);
        // the first bid takes the first slot, empty only while the book is
        if (uint160(entryA) == 0) return (0, 1, true, address(0));
        uint256 entryB = _sload(slotA + 1);
        (uint256 bestScore, uint256 runnerScore, bool secondLeads) = _scores(entryA, entryB, w1, w3);
        (address leader, address runner) = (address(uint160(entryA)), address(uint160(entryB)));
        if (secondLeads) (leader, runner, side) = (runner, leader, 1);
        if (provider == leader) {
            // the leader improves its own bid; the runner-up (another provider) stays
            if (score >= bestScore) revert BidNotBetter(score, bestScore);
            return (side, 1, false, address(0));
        }
        // the runner-up's side (or the empty one): the runner-up improves its bid, or a newcomer pushes it out
        side = 1 - side;
        newcomer = provider != runner;
        if (newcomer) pushedOut = runner;
        if (score < bestScore) return (side, 1, newcomer, pushedOut);
        if (score >= runnerScore) revert BidNotBetter(score, runnerScore);
        rank = 2;
    }

    /// @dev The scores of a non-empty book's two sides (`entryA`, `entryB`; latencies and the second's lead bit in
    /// the job's slot 1 and 3 words `w1`, `w3`), best first, and whether the second side leads: it scores lower, or
    /// ties and led when placed. No runner-up: its score is the largest (no bid is refused for it).
    function _scores(uint256 entryA, uint256 entryB, uint256 w1, uint256 w3)
        private
        pure
        returns (uint256 bestScore, uint256 runnerScore, bool secondLeads)
    {
        (uint256 pw, uint256 lw) = _factors(w1, w3);
        unchecked {
            // the bounds of `_score`: no overflow
            bestScore = (entryA >> 160) * pw + uint32(w1 >> _LATENCY) * lw;
            if (uint160(entryB) == 0) return (bestScore, type(uint256).max, false);
            runnerScore = (entryB >> 160) * pw + uint32(w3 >> _SECOND_LATENCY) * lw;
        }
        secondLeads = runnerScore < bestScore || (runnerScore == bestScore && (w3 >> _SECOND_LEADS) != 0);
        if (secondLeads) (bestScore, runnerScore) = (runnerScore, bestScore);
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

    /// @dev The job's bid book, best first: its two slots and the latencies kept in the job's slots, in the order
    /// of their scores (a tie: the second slot's first iff its bit says it led when placed).
    function _book(bytes32 jobId, JobRecord storage j) private view returns (BidBook memory book) {
        BookSlots storage stored = _books[jobId];
        (book.best, book.bestPrice, book.runner, book.runnerPrice) =
        (stored.best, stored.bestPrice, stored.runner, stored.runnerPrice);
        (book.bestLatency, book.runnerLatency) = (j.latency, j.secondLatency);
        if (book.runner == address(0)) return book;
        uint256 weight = j.priceWeightBps;
        uint256 maxPrice = j.maxPrice;
        uint256 maxLatency = j.deadline - j.auctionEnd;
        uint256 first = _score(weight, book.bestPrice, book.bestLatency, maxPrice, maxLatency);
        uint256 second = _score(weight, book.runnerPrice, book.runnerLatency, maxPrice, maxLatency);
        if (second < first || (second == first && j.secondLeads)) {
            (book.best, book.runner) = (book.runner, book.best);
            (book.bestPrice, book.runnerPrice) = (book.runnerPrice, book.bestPrice);
            (book.bestLatency, book.runnerLatency) = (book.runnerLatency, book.bestLatency);
        }
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
