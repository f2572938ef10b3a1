// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ReverseBookBase} from "./ReverseBookBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {
    AUCTION_DUTCH,
    AuctionTerms,
    Bid,
    Intent,
    Job,
    JobState,
    MAX_BOOK_LATENCY,
    MAX_BOOK_PRICE
} from "../../src/MarketStructs.sol";

/// @notice The one-word bid book (issue 14, gas target "bid < 60k" for every bid kind): a book side is one word
/// (order bit, 15-bit latency, 80-bit price, provider) and the best is chosen by the two words' order bits, so
/// every bid writes exactly one storage slot of the market and no job slot. Attacked:
/// - a price or latency too wide for its bits bleeding into the next field (a bid that reads back as another
///   price, latency or provider): refused at post (maxPrice) and at bid (latency), and the limits round-trip;
/// - a lead change that writes one word corrupting which word is best, over long chains of lead changes and
///   after a failover clears the runner-up's word;
/// - a bid kind that writes more than one slot (the gas bound the layout exists for).
contract BookWordsTest is ReverseBookBase {
    using IntentBuilder for Intent;

    /// @dev A reverse intent whose maxPrice does not fit the book's 80 bits is refused at post, naming the
    /// limit; the Dutch market (no book) takes the same price cap.
    function test_bookWords_maxPriceWiderThanTheBookIsRefusedAtPost() public {
        uint256 tooWide = MAX_BOOK_PRICE + 1;
        token.mint(requester, 3 * tooWide);
        Intent memory intent = IntentBuilder.init(requester, modelId).withMaxPrice(tooWide);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ValueTooLarge.selector, tooWide, MAX_BOOK_PRICE));
        w.reverse.post(intent);
        assertEq(uint256(w.reverse.job(w.reverse.hashIntent(intent)).state), uint256(JobState.None));
        Intent memory dutch = IntentBuilder.init(requester, modelId).withAuctionType(AUCTION_DUTCH)
            .withMaxPrice(tooWide).withStartPrice(tooWide / 2);
        vm.prank(requester);
        bytes32 jobId = w.dutch.post(dutch);
        assertEq(w.dutch.job(jobId).maxPrice, tooWide);
    }

    /// @dev A latency wider than 15 bits is refused even where the deadline leaves room for it (the score
    /// still uses the job's whole latency range); the widest price and latency the words hold read back
    /// exactly, from the views and the award.
    function test_bookWords_widestPriceAndLatencyRoundTrip_widerLatencyRefused() public {
        uint256 maxPrice = MAX_BOOK_PRICE;
        uint256 stakeNeeded = maxPrice * 4;
        token.mint(requester, 2 * maxPrice);
        token.mint(provider, stakeNeeded);
        vm.prank(provider);
        w.staking.stake(stakeNeeded);
        Intent memory intent = IntentBuilder.init(requester, modelId).withMaxPrice(maxPrice)
            .withDeadline(uint64(block.timestamp + 60 + 2 * MAX_BOOK_LATENCY));
        bytes32 jobId = _post(intent);
        uint32 wide = uint32(MAX_BOOK_LATENCY + 1);
        AuctionTerms memory t = _terms(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.LatencyTooLong.selector, wide, MAX_BOOK_LATENCY));
        w.reverse.bid(jobId, t, Bid(provider, uint96(maxPrice), wide));
        _bid(jobId, provider, uint96(maxPrice), uint32(MAX_BOOK_LATENCY));
        Bid memory best = w.reverse.bestBid(jobId);
        assertEq(best.provider, provider);
        assertEq(best.price, maxPrice, "price bled");
        assertEq(best.latency, MAX_BOOK_LATENCY, "latency bled");
        assertEq(w.reverse.runnerUp(jobId).provider, address(0));
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        Job memory j = w.reverse.job(jobId);
        (address who, uint256 price, uint32 latency) = (j.provider, j.price, j.latency);
        assertEq(who, provider);
        assertEq(price, maxPrice);
        assertEq(latency, MAX_BOOK_LATENCY);
    }

    /// @dev While Open the job's own latency is not the book's: it reads 0 until an award.
    function test_bookWords_openJobShowsNoLatency() public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId));
        _bid(jobId, provider, 4e17, 60);
        assertEq(w.reverse.job(jobId).latency, 0);
    }

    /// @dev Every bid kind writes exactly one slot of the market (one book word, no job slot): the first bid,
    /// a lead taken with and without a push-out, a push-out of the runner-up, the leader and the runner-up
    /// improving, the runner-up taking the lead, and lead changes after earlier lead changes.
    function test_bookWords_everyBidKindWritesOneSlot() public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId).withNonce(7));
        _bidWritesOneSlot(jobId, provider, 6e17, 60); // first
        _bidWritesOneSlot(jobId, provider2, 5e17, 60); // takes the lead, no push-out
        _bidWritesOneSlot(jobId, provider2, 4e17, 45); // the leader improves
        _bidWritesOneSlot(jobId, provider, 5e17, 50); // the runner-up improves
        _bidWritesOneSlot(jobId, provider3, 45e16, 50); // pushes the runner-up out
        _bidWritesOneSlot(jobId, provider, 3e17, 30); // takes the lead, pushes out
        _bidWritesOneSlot(jobId, provider2, 2e17, 30); // the runner-up takes the lead
        _bidWritesOneSlot(jobId, provider3, 1e17, 30); // takes the lead after two lead changes
        assertEq(w.reverse.bestBid(jobId).provider, provider3);
        assertEq(w.reverse.runnerUp(jobId).provider, provider2);
    }

    function _bidWritesOneSlot(bytes32 jobId, address p, uint96 price, uint32 latency) internal {
        vm.record();
        _bid(jobId, p, price, latency);
        (, bytes32[] memory writes) = vm.accesses(address(w.reverse));
        assertEq(writes.length, 1, "a bid wrote more than one market slot");
        assertEq(w.reverse.bestBid(jobId).provider == p || w.reverse.runnerUp(jobId).provider == p, true);
    }

    /// @dev Long chains of lead changes among three providers (each taking the lead from the other two, so the
    /// order bits flip on alternating words) keep the book ordered as a plain reference says; then the award
    /// goes to the best at the second-score price, a failover clears the runner-up's word keeping its order
    /// bit, and the views still name the right best.
    function testFuzz_bookWords_leadChainsKeepTheOrder(uint256 seed) public {
        bytes32 jobId =
            _post(IntentBuilder.init(requester, modelId).withFailover(true).withPriceWeight(10_000));
        address[3] memory ps = [provider, provider2, provider3];
        uint96 price = 9e17;
        address lastLeader;
        address lastRunner;
        for (uint256 s; s < 24; ++s) {
            uint256 x = uint256(keccak256(abi.encode(seed, s)));
            // the next leader: any provider but the current one
            address p = ps[x % 3];
            if (p == lastLeader) p = ps[(x + 1) % 3];
            price -= uint96(1e16 + (x >> 8) % 1e16);
            _bid(jobId, p, price, uint32(1 + (x >> 16) % 60));
            if (p != lastLeader) (lastLeader, lastRunner) = (p, lastLeader);
            assertEq(w.reverse.bestBid(jobId).provider, lastLeader, "best");
            assertEq(w.reverse.bestBid(jobId).price, price, "best price");
            assertEq(w.reverse.runnerUp(jobId).provider, lastRunner, "runner-up");
        }
        Bid memory runner = w.reverse.runnerUp(jobId);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        assertEq(w.reverse.job(jobId).provider, lastLeader);
        vm.warp(w.reverse.providerDeadline(jobId) + 1);
        w.reverse.expire(jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(j.provider, runner.provider, "failover to the runner-up");
        assertEq(j.price, runner.price);
        assertEq(j.latency, runner.latency);
        // the runner-up's word is cleared with its order bit kept: the old best is still read as the best
        assertEq(w.reverse.bestBid(jobId).provider, lastLeader);
        assertEq(w.reverse.runnerUp(jobId).provider, address(0));
    }
}
