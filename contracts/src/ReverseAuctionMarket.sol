// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BaseMarket} from "./BaseMarket.sol";
import {IMarket} from "./interfaces/IMarket.sol";
import {IReverseAuctionMarket} from "./interfaces/IReverseAuctionMarket.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {TermsLib} from "./libraries/TermsLib.sol";
import {
    AUCTION_REVERSE,
    AuctionTerms,
    Bid,
    Intent,
    JobRecord,
    JobState,
    JobTerms,
    MarketParams,
    MAX_BOOK_LATENCY
} from "./MarketStructs.sol";

/// @title ReverseAuctionMarket
/// @notice Open scoring reverse auction with second-score payment. Only the pricing and winner
/// resolution live here; escrow, delivery and disputes are `BaseMarket`'s. While a job is Open its record holds
/// one word, the hash of its terms and its state (`TermsLib`): `bid`, `award` and `refund` take the terms back as
/// calldata, and the award (or the refund) writes the record the later steps read.
contract ReverseAuctionMarket is BaseMarket, IReverseAuctionMarket {
    /// @dev The two best bids of distinct providers, as award and the views read them (decoded from the book's
    /// two words, `_books`).
    struct BidBook {
        address best;
        uint96 bestPrice;
        uint32 bestLatency;
        address runner;
        uint96 runnerPrice;
        uint32 runnerLatency;
        // the storage slot of the runner-up's word (cleared when the runner-up is used)
        uint256 runnerSlot;
        // that word as read (its order bit is kept when cleared)
        uint256 runnerWord;
    }

    /// @dev A book side is one word: the order bit (bit 255), the latency (15 bits above the price), the price
    /// (80 bits above the provider) and the provider (the low 160 bits). The two words are unordered: the best
    /// is word 0 if their order bits are equal, word 1 if they differ, so a bid that takes the lead writes only
    /// the word it replaces (the old leader's word becomes the runner-up by the bit the new word carries). Every
    /// bid writes exactly one word and no job slot. `post` writes non-zero sentinels into both words (an empty
    /// side is address 0 with price 1), so a bid rewrites a non-zero slot (~5k gas instead of ~22k): the
    /// requester prepays the book's storage.
    uint256 private constant _ORDER_BIT = 1 << 255;
    uint256 private constant _PRICE_SHIFT = 160;
    uint256 private constant _LATENCY_SHIFT = 240;
    uint256 private constant _PRICE_MASK = (1 << 80) - 1;
    uint256 private constant _LATENCY_MASK = (1 << 15) - 1;
    /// @dev An empty side: address 0, price 1, order bit 0.
    uint256 private constant _EMPTY = 1 << _PRICE_SHIFT;

    mapping(bytes32 jobId => uint256[2]) private _books;

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
    function bid(bytes32 jobId, AuctionTerms calldata t, Bid calldata b) external whenNotPaused {
        // no reentrancy guard: bid only calls Staking (trusted, no call backs)
        _checkTerms(jobId, t);
        address provider = b.provider;
        // the bid's book word (without the order bit) and its score factors: score = price * pw + latency * lw
        // (`_score`, its factors computed once)
        uint256 entry;
        uint256 pw;
        uint256 lw;
        {
            (uint256 price, uint256 latency) = (b.price, b.latency);
            // a bid reads one job slot (the Open word); the terms it checks and scores by are the calldata's
            uint256 maxPrice = t.maxPrice;
            (uint40 end, uint16 w) = (t.auctionEnd, t.priceWeightBps);
            if (block.timestamp >= end) revert AuctionClosed(jobId, end);
            // the provider's clock starts at the award, at the earliest at auctionEnd (< deadline, checked at post)
            uint256 maxLatency;
            unchecked {
                maxLatency = t.deadline - end;
            }
            _requireAuthorized(provider);
            if (price == 0) revert ZeroPrice();
            // maxPrice <= MAX_BOOK_PRICE (checked at post): the price fits its 80 bits
            if (price > maxPrice) revert BidAboveMaxPrice(price, maxPrice);
            if (latency == 0) revert ZeroLatency();
            // the score uses the job's whole latency range; a book word holds 15 bits of latency
            uint256 cap = maxLatency < MAX_BOOK_LATENCY ? maxLatency : MAX_BOOK_LATENCY;
            if (latency > cap) revert LatencyTooLong(uint32(latency), cap);
            unchecked {
                // the bounds of `_score`: no overflow
                (pw, lw) = (uint256(w) * maxLatency, (BPS - w) * maxPrice);
            }
            entry = (latency << _LATENCY_SHIFT) | (price << _PRICE_SHIFT) | uint160(provider);
        }
        (uint8 rank, address best, address runner) = _place(_bookSlot(jobId), entry, pw, lw);
        // a provider on the book holds a reservation of the job's largest lock; a newcomer reserves one (reverts
        // InsufficientStake: the whole bid with it) and, as it pushes the runner-up (if any) off the book,
        // releases the runner-up's in the same call (`pushedOut`). Staking logs neither: the bid's event does.
        address pushedOut = address(0);
        if (provider != best && provider != runner) {
            pushedOut = runner;
            _staking.reserve(provider, pushedOut, _reservation(t));
        }
        emit BidPlaced(jobId, provider, msg.sender, b.price, b.latency, rank, pushedOut);
    }

    /// @inheritdoc IReverseAuctionMarket
    function award(bytes32 jobId, AuctionTerms calldata t, JobTerms calldata job_) external nonReentrant {
        JobRecord storage j = _checkTerms(jobId, t, job_);
        _record(j, t, job_);
        _resolve(jobId, j);
    }

    /// @inheritdoc IReverseAuctionMarket
    function refund(bytes32 jobId, AuctionTerms calldata t, JobTerms calldata job_) external nonReentrant {
        JobRecord storage j = _checkTerms(jobId, t, job_);
        uint40 end = t.auctionEnd;
        if (block.timestamp < end) revert AuctionNotEnded(jobId, end);
        BidBook memory book = _book(jobId);
        // with bids, only once no award is possible any more
        if (book.best != address(0) && block.timestamp < t.deadline) revert NotRefundable(jobId);
        // what the refund and the views read: slots 0 and 1
        _recordPayment(j, t, job_, JobState.Refunded);
        _releaseBook(book, t);
        _refundEscrow(jobId, j);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc BaseMarket
    function auctionType() public pure override(BaseMarket, IMarket) returns (uint8) {
        return AUCTION_REVERSE;
    }

    /// @inheritdoc IReverseAuctionMarket
    function bestBid(bytes32 jobId) external view returns (Bid memory) {
        BidBook memory book = _book(jobId);
        address best = book.best;
        return best == address(0) ? Bid(address(0), 0, 0) : Bid(best, book.bestPrice, book.bestLatency);
    }

    /// @inheritdoc IReverseAuctionMarket
    function runnerUp(bytes32 jobId) external view returns (Bid memory) {
        BidBook memory book = _book(jobId);
        address runner = book.runner;
        return
            runner == address(0) ? Bid(address(0), 0, 0) : Bid(runner, book.runnerPrice, book.runnerLatency);
    }

    /// @inheritdoc IReverseAuctionMarket
    function scoreOf(AuctionTerms calldata t, uint256 price, uint32 latency) external pure returns (uint256) {
        // terms no job can have (post checks them): 0, not a wrapped score
        if (price > type(uint96).max || t.deadline <= t.auctionEnd || t.priceWeightBps > BPS) return 0;
        return _score(t.priceWeightBps, price, latency, t.maxPrice, t.deadline - t.auctionEnd);
    }

    /// @inheritdoc IReverseAuctionMarket
    function clearingPrice(bytes32 jobId, AuctionTerms calldata t) external view returns (uint256) {
        _checkTerms(jobId, t);
        BidBook memory book = _book(jobId);
        if (book.best == address(0)) return 0;
        return _clearingPrice(book, t.priceWeightBps, t.maxPrice, t.deadline - t.auctionEnd);
    }

    // ------------------------------------------------------------------ hooks

    /// @inheritdoc BaseMarket
    function _checkPricing(Intent calldata intent) internal pure override {
        if (intent.startPrice != 0) revert BadStartPrice(intent.startPrice, intent.maxPrice);
    }

    /// @inheritdoc BaseMarket
    function _opened(bytes32 jobId) internal override {
        _books[jobId] = [_EMPTY, _EMPTY];
    }

    /// @inheritdoc BaseMarket
    function _failover(bytes32 jobId, JobRecord storage j, address from) internal override returns (bool) {
        BidBook memory book = _book(jobId);
        address runner = book.runner;
        if (runner == address(0)) return false;
        // the runner-up is used at most once; it lost the auction, so it is not penalised for having moved
        // its stake on
        _clearRunner(book);
        uint96 price = book.runnerPrice;
        if (!_tryAward(jobId, j, runner, price, price, book.runnerLatency, false)) return false;
        emit FailedOver(jobId, from, runner, price);
        return true;
    }

    // ------------------------------------------------------------------ private

    /// @dev Awards the best bid at the second-score price; if it has no longer its promised time or cannot
    /// lock its stake any more (penalised), the runner-up at its own bid; if neither can, refunds. Never
    /// reverts for stake or time reasons.
    function _resolve(bytes32 jobId, JobRecord storage j) private {
        _requireAwardable(jobId, j);
        BidBook memory book = _book(jobId);
        if (book.best == address(0)) revert NoBids(jobId);
        _releaseBook(book, _stakeRequired(j, j.maxPrice));
        uint256 price = _clearingPrice(book, j.priceWeightBps, j.maxPrice, j.deadline - j.auctionEnd);
        if (_tryAward(jobId, j, book.best, book.bestPrice, price, book.bestLatency, true)) return;
        if (book.runner != address(0)) {
            // the runner-up becomes the provider: it is no failover candidate any more
            _clearRunner(book);
            if (_tryAward(
                    jobId, j, book.runner, book.runnerPrice, book.runnerPrice, book.runnerLatency, true
                )) {
                return;
            }
        }
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    /// @dev `_releaseBook` of an Open job's book by its terms (nothing without bids).
    function _releaseBook(BidBook memory book, AuctionTerms calldata t) private {
        if (book.best != address(0)) _releaseBook(book, _reservation(t));
    }

    /// @dev Releases the stake the book's bids reserved (the book has a best bid; once per job: at its award or its
    /// refund). The award then locks the winner's stake at most that reservation (its price is at most maxPrice),
    /// so it cannot fail for want of stake.
    function _releaseBook(BidBook memory book, uint256 reserved) private {
        _staking.release(book.best, reserved);
        if (book.runner != address(0)) _staking.release(book.runner, reserved);
    }

    /// @dev The job's record if it is Open with terms `t` (reverts `InvalidState` or `TermsMismatch`).
    function _checkTerms(bytes32 jobId, AuctionTerms calldata t) private view returns (JobRecord storage j) {
        j = _job(jobId);
        uint256 word;
        assembly ("memory-safe") {
            word := sload(add(j.slot, 1))
        }
        if (word != TermsLib.openWordOf(t)) {
            // the low byte of slot 1 is the record's state
            JobState st = JobState(uint8(word));
            if (st != JobState.Open) revert InvalidState(jobId, st);
            revert TermsMismatch(jobId);
        }
    }

    /// @dev `_checkTerms`, and `job_` is what `t.jobTerms` hashes (else `TermsMismatch`): the award's and the refund's.
    function _checkTerms(bytes32 jobId, AuctionTerms calldata t, JobTerms calldata job_)
        private
        view
        returns (JobRecord storage j)
    {
        j = _checkTerms(jobId, t);
        if (TermsLib.hashOf(job_) != t.jobTerms) revert TermsMismatch(jobId);
    }

    /// @dev Writes the record of an Open job from its terms (slots 0, 1, 3, 4 and 5; the award writes slot 2).
    function _record(JobRecord storage j, AuctionTerms calldata t, JobTerms calldata job_) private {
        _recordPayment(j, t, job_, JobState.Open);
        (j.minStake, j.postedAt, j.auctionEnd) = (t.minStake, job_.postedAt, t.auctionEnd);
        (j.stakeMultiple, j.priceWeightBps, j.allowFailover) =
        (t.stakeMultiple, t.priceWeightBps, job_.allowFailover);
        (j.modelId, j.inputCommitment) = (job_.modelId, job_.inputCommitment);
    }

    /// @dev Writes slot 0 (who is paid, the fee, the callback) and slot 1 (`state`, the deadline and the price cap,
    /// over the Open word) from the terms.
    function _recordPayment(
        JobRecord storage j,
        AuctionTerms calldata t,
        JobTerms calldata job_,
        JobState state
    ) private {
        (j.requester, j.proofMode, j.feeBps, j.callbackGasLimit) =
        (job_.requester, job_.proofMode, job_.feeBps, job_.callbackGasLimit);
        _clearOpenWord(j);
        (j.state, j.deadline, j.maxPrice) = (state, t.deadline, t.maxPrice);
    }

    /// @dev Clears slot 1 (the Open word) before the record's own fields are written into it.
    function _clearOpenWord(JobRecord storage j) private {
        assembly ("memory-safe") {
            sstore(add(j.slot, 1), 0)
        }
    }

    /// @dev The stake a bid reserves: the job's largest lock, max(minStake, maxPrice * stakeMultiple).
    function _reservation(AuctionTerms calldata t) private pure returns (uint256) {
        return _lockFor(t.minStake, t.stakeMultiple, t.maxPrice);
    }

    /// @dev Enters a bid (`entry`: its book word without the order bit) into the book at `slot` (words `slot`
    /// and `slot + 1`): the leader if it scores lower than the best, else the runner-up if it scores lower than
    /// that. Writes exactly one word: the bidder's own if it is on the book, else the runner-up's (pushed out);
    /// a new leader's word carries the order bit that makes it the best. Returns the book's providers as they
    /// were before the bid. Score = price * pw + latency * lw.
    function _place(uint256 slot, uint256 entry, uint256 pw, uint256 lw)
        private
        returns (uint8 rank, address best, address runner)
    {
        // index arithmetic on {0, 1} and slot + {0, 1} (a storage array's own wrap-around): unchecked
        unchecked {
            (uint256 bestIndex, uint256 bestWord, uint256 runnerWord) = _words(slot);
            uint256 score = _wordScore(entry, pw, lw);
            rank = 1;
            best = address(uint160(bestWord));
            runner = address(uint160(runnerWord));
            if (best == address(0)) {
                _sstore(slot + bestIndex, entry | (bestWord & _ORDER_BIT));
                return (rank, best, runner);
            }
            uint256 bestScore = _wordScore(bestWord, pw, lw);
            if (address(uint160(entry)) == best) {
                // the leader improves its own bid; the runner-up (another provider) stays
                if (score >= bestScore) revert BidNotBetter(score, bestScore);
                _sstore(slot + bestIndex, entry | (bestWord & _ORDER_BIT));
            } else if (score < bestScore) {
                // a new leader, in the runner-up's word (the runner-up's old bid is worse): the old leader becomes
                // the runner-up by the order bit, chosen so that the bits select the new word
                uint256 runnerIndex = 1 - bestIndex;
                _sstore(slot + runnerIndex, entry | ((bestWord & _ORDER_BIT) ^ (runnerIndex << 255)));
            } else {
                if (runner != address(0)) {
                    uint256 runnerScore = _wordScore(runnerWord, pw, lw);
                    if (score >= runnerScore) revert BidNotBetter(score, runnerScore);
                }
                _sstore(slot + (1 - bestIndex), entry | (runnerWord & _ORDER_BIT));
                rank = 2;
            }
        }
    }

    /// @dev A book word's score: its price * pw + its latency * lw (the bounds of `_score`: no overflow).
    function _wordScore(uint256 word, uint256 pw, uint256 lw) private pure returns (uint256) {
        unchecked {
            return
                ((word >> _PRICE_SHIFT) & _PRICE_MASK) * pw + ((word >> _LATENCY_SHIFT) & _LATENCY_MASK) * lw;
        }
    }

    /// @dev The first of the job's two book words (`_books[jobId]`; the other is the next slot).
    function _bookSlot(bytes32 jobId) private view returns (uint256 slot) {
        uint256[2] storage stored = _books[jobId];
        assembly ("memory-safe") {
            slot := stored.slot
        }
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

    /// @dev The job's bid book, decoded from its two words.
    function _book(bytes32 jobId) private view returns (BidBook memory book) {
        uint256 slot = _bookSlot(jobId);
        (uint256 bestIndex, uint256 bestWord, uint256 runnerWord) = _words(slot);
        (book.best, book.bestPrice, book.bestLatency) = _decode(bestWord);
        (book.runner, book.runnerPrice, book.runnerLatency) = _decode(runnerWord);
        (book.runnerSlot, book.runnerWord) = (slot + (1 - bestIndex), runnerWord);
    }

    /// @dev The book's words at `slot` and `slot + 1`, the best's first, and the best's index: 0 if their order
    /// bits are equal, 1 if they differ.
    function _words(uint256 slot)
        private
        view
        returns (uint256 bestIndex, uint256 bestWord, uint256 runnerWord)
    {
        uint256 word0 = _sload(slot);
        uint256 word1;
        unchecked {
            // the next slot, as a storage array's (wrapping)
            word1 = _sload(slot + 1);
        }
        bestIndex = (word0 ^ word1) >> 255;
        (bestWord, runnerWord) = bestIndex == 0 ? (word0, word1) : (word1, word0);
    }

    /// @dev A book word's provider, price and latency (price and latency 0 on an empty side).
    function _decode(uint256 word) private pure returns (address who, uint96 price, uint32 latency) {
        who = address(uint160(word));
        if (who != address(0)) {
            price = uint96((word >> _PRICE_SHIFT) & _PRICE_MASK);
            latency = uint32((word >> _LATENCY_SHIFT) & _LATENCY_MASK);
        }
    }

    /// @dev Takes the runner-up off the book (keeping its word's order bit, so the best stays the best).
    function _clearRunner(BidBook memory book) private {
        _sstore(book.runnerSlot, book.runnerWord & _ORDER_BIT);
    }

    /// @dev The price at which the best bid's score would tie the runner-up's, floor-rounded, clamped to
    /// [bestPrice, maxPrice]; the best's own price without a runner-up.
    function _clearingPrice(BidBook memory book, uint256 weight, uint256 maxPrice, uint256 maxLatency)
        private
        pure
        returns (uint256 price)
    {
        price = book.bestPrice;
        if (book.runner == address(0)) return price;
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
