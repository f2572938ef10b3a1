// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {BaseMarketTest} from "./BaseMarket.t.sol";
import {IntentBuilder} from "./utils/IntentBuilder.sol";
import {ReverseAuctionMarket} from "../src/ReverseAuctionMarket.sol";
import {IReverseAuctionMarket} from "../src/interfaces/IReverseAuctionMarket.sol";
import {IMarket, IMarketEvents} from "../src/interfaces/IMarket.sol";
import {IModelRegistry} from "../src/interfaces/IModelRegistry.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {
    AuctionTerms,
    Bid,
    Intent,
    Job,
    JobState,
    JobTerms,
    MarketParams,
    AUCTION_REVERSE
} from "../src/MarketStructs.sol";

contract ReverseAuctionMarketTest is BaseMarketTest {
    using IntentBuilder for Intent;

    IReverseAuctionMarket internal rmarket;

    function _deployMarket(IERC20 token_, MarketParams memory params_) internal override returns (IMarket) {
        return new ReverseAuctionMarket(token_, registry, staking, treasury, owner, params_);
    }

    function _intent() internal view override returns (Intent memory) {
        return IntentBuilder.init(requester, modelId);
    }

    function _awardTo(bytes32 jobId, address who, uint96 price, uint32 latency) internal override {
        _bid(jobId, who, price, latency);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
    }

    function _refund(bytes32 jobId) internal override {
        _refundOn(rmarket, jobId);
    }

    /// @dev Awards `jobId` with its posted terms.
    function _award(bytes32 jobId) internal {
        _awardOn(rmarket, jobId);
    }

    function setUp() public override {
        super.setUp();
        rmarket = IReverseAuctionMarket(address(market));
    }

    function _bid(bytes32 jobId, address who, uint96 price, uint32 latency) internal {
        _bidOn(rmarket, jobId, who, Bid(who, price, latency));
    }

    /// @dev The score of a bid on `jobId` under its posted terms.
    function _scoreOf(bytes32 jobId, uint256 price, uint32 latency) internal returns (uint256) {
        return rmarket.scoreOf(_terms(jobId), price, latency);
    }

    function _clearingPrice(bytes32 jobId) internal returns (uint256) {
        return rmarket.clearingPrice(jobId, _terms(jobId));
    }

    /// @dev Locks all of `who`'s available stake in another job (nonce `nonce`) awarded to it now + 60 s.
    function _lockElsewhere(address who, uint256 nonce) internal returns (bytes32 other) {
        other = _post(_intent().withMinStake(staking.availableOf(who)).withNonce(nonce));
        _bid(other, who, 1e17, 60);
        vm.warp(_terms(other).auctionEnd);
        _award(other);
    }

    function _expectRejectedBid(bytes32 jobId, address caller, Bid memory b, bytes memory err) internal {
        bytes32 before =
            keccak256(abi.encode(_fingerprint(jobId), rmarket.bestBid(jobId), rmarket.runnerUp(jobId)));
        AuctionTerms memory t = _terms(jobId);
        vm.prank(caller);
        vm.expectRevert(err);
        rmarket.bid(jobId, t, b);
        assertEq(
            keccak256(abi.encode(_fingerprint(jobId), rmarket.bestBid(jobId), rmarket.runnerUp(jobId))),
            before,
            "state changed"
        );
    }

    // ================================================================== post (reverse specifics)

    function test_post_revertsOnNonZeroStartPrice() public {
        Intent memory intent = _intent().withStartPrice(1);
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.BadStartPrice.selector, 1, intent.maxPrice)
        );
    }

    function test_auctionType_isReverse() public view {
        assertEq(market.auctionType(), AUCTION_REVERSE);
    }

    // ================================================================== bid

    function test_bid_firstBidLeads() public {
        bytes32 jobId = _post(_intent());
        vm.expectEmit(address(market));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider, provider, 5e17, 60, 1, address(0));
        _bid(jobId, provider, 5e17, 60);
        Bid memory b = rmarket.bestBid(jobId);
        assertEq(b.provider, provider);
        assertEq(b.price, 5e17);
        assertEq(b.latency, 60);
        assertEq(rmarket.runnerUp(jobId).provider, address(0));
        // a bid reserves the job's largest lock, max(minStake, maxPrice * stakeMultiple) (issue 14, finding 2)
        AuctionTerms memory t = _terms(jobId);
        uint256 reserved = uint256(t.maxPrice) * t.stakeMultiple;
        if (reserved < t.minStake) reserved = t.minStake;
        assertEq(staking.lockedOf(provider), reserved);
    }

    function test_bid_improvingBidDisplacesBestToRunnerUp() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        assertEq(rmarket.bestBid(jobId).provider, provider2);
        assertEq(rmarket.runnerUp(jobId).provider, provider);
        assertEq(rmarket.runnerUp(jobId).price, 5e17);
        // a third provider beats the runner-up only
        _bid(jobId, provider3, 45e16, 60);
        assertEq(rmarket.bestBid(jobId).provider, provider2);
        assertEq(rmarket.runnerUp(jobId).provider, provider3);
        // and improving again keeps the book to two distinct providers
        _bid(jobId, provider, 3e17, 60);
        assertEq(rmarket.bestBid(jobId).provider, provider);
        assertEq(rmarket.runnerUp(jobId).provider, provider2);
    }

    function test_bid_leaderImprovingItselfKeepsRunnerUp() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        _bid(jobId, provider2, 3e17, 60);
        assertEq(rmarket.bestBid(jobId).price, 3e17);
        assertEq(rmarket.runnerUp(jobId).provider, provider);
    }

    function test_bid_bySolver() public {
        bytes32 jobId = _post(_intent());
        _bidOn(rmarket, jobId, solver, Bid(provider, 5e17, 60));
        assertEq(rmarket.bestBid(jobId).provider, provider);
    }

    function test_bid_tieKeepsEarlierBidInTheLead() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 5e17, 60);
        assertEq(rmarket.bestBid(jobId).provider, provider);
        assertEq(rmarket.runnerUp(jobId).provider, provider2);
        // a tie with the runner-up is refused
        uint256 score = _scoreOf(jobId, 5e17, 60);
        _expectRejectedBid(
            jobId,
            provider3,
            Bid(provider3, 5e17, 60),
            abi.encodeWithSelector(IReverseAuctionMarket.BidNotBetter.selector, score, score)
        );
        // the leader is paid the tied price
        assertEq(_clearingPrice(jobId), 5e17);
    }

    function test_bid_revertsWhenNotBeatingRunnerUp() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 4e17, 60);
        _bid(jobId, provider2, 5e17, 60);
        uint256 runnerScore = _scoreOf(jobId, 5e17, 60);
        uint256 score = _scoreOf(jobId, 6e17, 60);
        _expectRejectedBid(
            jobId,
            provider3,
            Bid(provider3, 6e17, 60),
            abi.encodeWithSelector(IReverseAuctionMarket.BidNotBetter.selector, score, runnerScore)
        );
    }

    function test_bid_revertsWhenLeaderDoesNotImprove() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 4e17, 60);
        uint256 best = _scoreOf(jobId, 4e17, 60);
        uint256 worse = _scoreOf(jobId, 45e16, 60);
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 45e16, 60),
            abi.encodeWithSelector(IReverseAuctionMarket.BidNotBetter.selector, worse, best)
        );
    }

    function test_bid_revertsWhenJobNotOpen() public {
        bytes32 none = keccak256("none");
        _expectRejectedBid(
            none,
            provider,
            Bid(provider, 1, 60),
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, none, JobState.None)
        );
    }

    function test_bid_lastSecondOfWindowSucceeds() public {
        bytes32 jobId = _post(_intent());
        vm.warp(_terms(jobId).auctionEnd - 1);
        _bid(jobId, provider, 5e17, 60);
    }

    function test_bid_revertsAtWindowEnd() public {
        bytes32 jobId = _post(_intent());
        uint40 end = _terms(jobId).auctionEnd;
        vm.warp(end);
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 5e17, 60),
            abi.encodeWithSelector(IMarketEvents.AuctionClosed.selector, jobId, end)
        );
    }

    function test_bid_revertsWhenNotAuthorized() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedBid(
            jobId,
            stranger,
            Bid(provider, 5e17, 60),
            abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, provider, stranger)
        );
    }

    function test_bid_revertsOnZeroPrice() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 0, 60),
            abi.encodeWithSelector(IReverseAuctionMarket.ZeroPrice.selector)
        );
    }

    function test_bid_revertsAboveMaxPrice() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 1e18 + 1, 60),
            abi.encodeWithSelector(IReverseAuctionMarket.BidAboveMaxPrice.selector, 1e18 + 1, 1e18)
        );
        _bid(jobId, provider, 1e18, 60);
    }

    function test_bid_revertsOnZeroLatency() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 5e17, 0),
            abi.encodeWithSelector(IMarketEvents.ZeroLatency.selector)
        );
    }

    function test_bid_revertsWhenLatencyOverrunsDeadline() public {
        bytes32 jobId = _post(_intent());
        AuctionTerms memory t = _terms(jobId);
        uint32 maxLatency = uint32(t.deadline - t.auctionEnd);
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 5e17, maxLatency + 1),
            abi.encodeWithSelector(IMarketEvents.LatencyTooLong.selector, maxLatency + 1, maxLatency)
        );
        _bid(jobId, provider, 5e17, maxLatency);
    }

    function test_bid_revertsOnInsufficientStake() public {
        bytes32 jobId = _post(_intent().withMinStake(STAKE + 1));
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 5e17, 60),
            abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider, STAKE, STAKE + 1)
        );
    }

    function test_bid_revertsWhenStakeIsUnstaking() public {
        bytes32 jobId = _post(_intent().withMinStake(STAKE));
        vm.prank(provider);
        staking.unstake(1);
        _expectRejectedBid(
            jobId,
            provider,
            Bid(provider, 5e17, 60),
            abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider, STAKE - 1, STAKE)
        );
    }

    function test_bid_revertsWhenPaused() public {
        bytes32 jobId = _post(_intent());
        vm.prank(owner);
        market.pause();
        _expectRejectedBid(
            jobId, provider, Bid(provider, 5e17, 60), abi.encodeWithSelector(Pausable.EnforcedPause.selector)
        );
    }

    function testFuzz_bid_bookHoldsTwoBestDistinctProviders(uint96[6] memory prices, uint32[6] memory lats)
        public
    {
        bytes32 jobId = _post(_intent());
        AuctionTerms memory t = _terms(jobId);
        address[3] memory who = [provider, provider2, provider3];
        uint256[3] memory bestOf = [type(uint256).max, type(uint256).max, type(uint256).max];
        for (uint256 i; i < 6; ++i) {
            uint96 price = uint96(bound(prices[i], 1, 1e18));
            uint32 lat = uint32(bound(lats[i], 1, 540));
            uint256 score = rmarket.scoreOf(t, price, lat);
            vm.prank(who[i % 3]);
            try rmarket.bid(jobId, t, Bid(who[i % 3], price, lat)) {
                bestOf[i % 3] = score;
            } catch {}
        }
        // the leader has the lowest score of all providers' latest accepted bids
        Bid memory best = rmarket.bestBid(jobId);
        Bid memory runner = rmarket.runnerUp(jobId);
        uint256 bestScore = _scoreOf(jobId, best.price, best.latency);
        for (uint256 k; k < 3; ++k) {
            assertGe(bestOf[k], bestScore);
        }
        if (runner.provider != address(0)) {
            assertTrue(runner.provider != best.provider, "distinct");
            // a tie keeps the earlier bid: the runner-up may score the same as the leader, never better
            assertLe(bestScore, _scoreOf(jobId, runner.price, runner.latency));
        }
    }

    /// @dev The counterexample the 20,000-run fuzz campaign found for `assertLt` above: two providers tie.
    function test_bid_bookHoldsTwoBestDistinctProviders_tie() public {
        testFuzz_bid_bookHoldsTwoBestDistinctProviders(
            [
                uint96(1_350_299_558),
                136_325_405_507_167,
                1,
                0,
                167_423_893_195_336,
                49_032_228_004_946_541_174_261_192
            ],
            [uint32(1_942_382), 169, 0, 0, 1_318_959_705, 6_592_906]
        );
    }

    // ================================================================== award

    function test_award_aloneIsPaidOwnBid() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        vm.expectEmit(address(market));
        emit IMarketEvents.Awarded(jobId, provider, 5e17, 60, 1e18, uint40(block.timestamp + 60));
        _award(jobId);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Awarded));
        assertEq(j.provider, provider);
        assertEq(j.price, 5e17);
        assertEq(j.stakeLocked, 1e18);
        assertEq(staking.lockedFor(provider, jobId), 1e18);
        assertEq(market.providerDeadline(jobId), block.timestamp + 60);
    }

    function test_award_locksMinStakeWhenLarger() public {
        bytes32 jobId = _post(_intent().withMinStake(10e18));
        _awardTo(jobId, provider, 5e17, 60);
        assertEq(staking.lockedFor(provider, jobId), 10e18);
    }

    function test_award_paysSecondScorePrice() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        // equal latency: the winner is paid the runner-up's price
        assertEq(market.job(jobId).price, 5e17);
        assertEq(market.job(jobId).provider, provider2);
        // the lock covers the price it is paid at the stake multiple
        assertEq(market.job(jobId).stakeLocked, 1e18);
    }

    function test_award_secondScorePriceCappedAtMaxPrice() public {
        bytes32 jobId = _post(_intent());
        // a slow bid at max price, then a fast one: the tie price would exceed maxPrice
        _bid(jobId, provider, 1e18, 500);
        _bid(jobId, provider2, 9e17, 10);
        assertEq(_clearingPrice(jobId), 1e18);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        assertEq(market.job(jobId).price, 1e18);
    }

    function testFuzz_award_secondScorePriceTiesRunnerUp(uint96 p1, uint32 l1, uint96 p2, uint32 l2, uint16 w)
        public
    {
        w = uint16(bound(w, 1, 10_000));
        bytes32 jobId = _post(_intent().withPriceWeight(w));
        p1 = uint96(bound(p1, 1, 1e18));
        p2 = uint96(bound(p2, 1, 1e18));
        l1 = uint32(bound(l1, 1, 540));
        l2 = uint32(bound(l2, 1, 540));
        uint256 s1 = _scoreOf(jobId, p1, l1);
        uint256 s2 = _scoreOf(jobId, p2, l2);
        vm.assume(s1 != s2);
        (uint96 wp, uint32 wl, uint96 rp, uint32 rl) = s1 < s2 ? (p1, l1, p2, l2) : (p2, l2, p1, l1);
        _bid(jobId, provider, rp, rl);
        _bid(jobId, provider2, wp, wl);
        uint256 price = _clearingPrice(jobId);
        uint256 runnerScore = _scoreOf(jobId, rp, rl);
        assertGe(price, wp, "below own bid");
        assertLe(price, 1e18, "above max");
        if (price < 1e18) {
            // the winner at `price` does not beat the runner-up's score, at price+1 it would lose
            assertLe(_scoreOf(jobId, price, wl), runnerScore);
            assertGt(_scoreOf(jobId, price + 1, wl), runnerScore);
        }
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        assertEq(market.job(jobId).price, price);
    }

    function test_award_revertsBeforeWindowEnd() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        uint40 end = _terms(jobId).auctionEnd;
        vm.warp(end - 1);
        bytes32 before = _fingerprint(jobId);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.AuctionNotEnded.selector, jobId, end));
        rmarket.award(jobId, t, jt);
        assertEq(_fingerprint(jobId), before);
    }

    function test_award_revertsAtDeadline() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        uint40 deadline = _terms(jobId).deadline;
        vm.warp(deadline);
        bytes32 before = _fingerprint(jobId);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.DeadlinePassed.selector, jobId, deadline));
        rmarket.award(jobId, t, jt);
        assertEq(_fingerprint(jobId), before);
        // and the requester can get the escrow back
        _refund(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Refunded));
    }

    function test_award_revertsWithoutBids() public {
        bytes32 jobId = _post(_intent());
        vm.warp(_terms(jobId).auctionEnd);
        bytes32 before = _fingerprint(jobId);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.expectRevert(abi.encodeWithSelector(IReverseAuctionMarket.NoBids.selector, jobId));
        rmarket.award(jobId, t, jt);
        assertEq(_fingerprint(jobId), before);
    }

    function test_award_revertsWhenAwarded() public {
        bytes32 jobId = _awarded(_intent());
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Awarded));
        rmarket.award(jobId, t, jt);
    }

    /// @dev Behaviour changed on purpose (issue 14, finding 2): the leader's bid reserved its stake, so it can
    /// no longer lock it in another job before the award (which used to skip it), and the award locks it.
    function test_award_leaderCannotMoveItsReservedStakeElsewhere() public {
        bytes32 jobId = _post(_intent().withMinStake(STAKE));
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        bytes32 other = _post(_intent().withNonce(1));
        AuctionTerms memory otherTerms = _terms(other);
        vm.prank(provider2);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider2, 0, 2e18));
        rmarket.bid(other, otherTerms, Bid(provider2, 1e17, 60));
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        Job memory j = market.job(jobId);
        assertEq(j.provider, provider2);
        assertEq(staking.lockedFor(provider2, jobId), STAKE);
        assertEq(staking.lockedOf(provider), 0, "the runner-up's reservation is released");
    }

    /// @dev Behaviour changed on purpose (issue 14, finding 2): unstaking after a bid cannot take the stake its
    /// bid reserved.
    function test_award_reservedStakeCannotBeUnstaked() public {
        bytes32 jobId = _post(_intent().withMinStake(STAKE));
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        vm.prank(provider2);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider2, 0, STAKE));
        staking.unstake(STAKE);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        assertEq(market.job(jobId).provider, provider2);
        assertEq(staking.lockedFor(provider2, jobId), STAKE);
    }

    // ================================================================== no implicit award by delivery

    /// @dev Behaviour changed on purpose (the Open record is one word, the terms' hash): a delivery no longer
    /// awards an Open job on the fly; the best bidder's delivery is refused until `award` writes the record,
    /// then settles as before.
    function test_deliver_revertsOnOpenJobAfterWindow_awardFirst() public {
        Intent memory intent = _intent();
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 5e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Open));
        market.deliver(jobId, out, proof);
        assertEq(_fingerprint(jobId), before);
        _award(jobId);
        _deliver(jobId, intent);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Settled));
        assertEq(j.provider, provider);
        assertEq(staking.stats(provider).jobsWon, 1);
    }

    function test_deliver_revertsOnOpenJobDuringWindow() public {
        Intent memory intent = _intent();
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 5e17, 60);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Open));
        market.deliver(jobId, out, proof);
    }

    // ================================================================== refund (reverse specifics)

    function test_refund_revertsWithBidsBeforeDeadline() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        bytes32 before = _fingerprint(jobId);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotRefundable.selector, jobId));
        rmarket.refund(jobId, t, jt);
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== failover

    function test_expire_failsOverToRunnerUp() public {
        Intent memory intent = _intent().withFailover(true);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider2, 5e17, 60);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        uint256 locked = market.job(jobId).stakeLocked;
        uint256 escrow = _escrow(intent.maxPrice);
        uint256 reqBefore = token.balanceOf(requester);
        uint256 marketBefore = token.balanceOf(address(market));
        vm.warp(market.providerDeadline(jobId) + 1);
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, locked);
        vm.expectEmit(address(market));
        emit IMarketEvents.FailedOver(jobId, provider, provider2, 5e17);
        market.expire(jobId);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Awarded));
        assertEq(j.provider, provider2);
        assertEq(j.price, 5e17);
        assertEq(j.awardedAt, block.timestamp);
        // compensation credited, escrow kept for the runner-up
        assertEq(token.balanceOf(requester), reqBefore, "nothing pushed");
        assertEq(staking.claimable(requester), locked, "compensated in Staking");
        assertEq(market.owed(requester), 0, "escrow kept");
        assertEq(token.balanceOf(address(market)), marketBefore);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.stakeOf(provider), STAKE - locked);
        assertEq(staking.lockedFor(provider2, jobId), 1e18);
        // the runner-up delivers and is paid its own bid
        uint256[] memory out = _output();
        vm.prank(provider2);
        market.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertEq(market.owed(provider2), 5e17);
        assertEq(market.owed(provider), 0, "the expired provider is owed nothing");
        uint256 fee = uint256(5e17) * 100 / 10_000;
        assertEq(market.owed(requester), escrow - 5e17 - fee);
        uint256 before = token.balanceOf(provider2);
        assertEq(_withdrawAll(provider2), 5e17);
        assertEq(token.balanceOf(provider2), before + 5e17);
        assertEq(_withdrawAll(requester), escrow - 5e17 - fee);
        vm.prank(requester);
        assertEq(staking.claim(), locked);
        assertEq(token.balanceOf(requester), reqBefore + locked + escrow - 5e17 - fee);
        assertEq(token.balanceOf(address(market)), market.feesOwed());
    }

    // ================================================================== lean storage

    /// @dev The stake lock is derived (max(minStake, price * stakeMultiple) of the posting-time terms), not
    /// stored: it must equal what Staking locked, and an owner's later stakeMultiple change must not reach it
    /// (or the slash at expiry).
    function test_lean_stakeLockedIsTheLockAndIgnoresLaterParams() public {
        Intent memory intent = _intent().withDeadline(uint64(block.timestamp + 5 days)).withMinStake(1e17);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        uint256 locked = staking.lockedFor(provider, jobId);
        assertEq(locked, 4e17 * 2, "max(minStake, price * stakeMultiple)");
        assertEq(market.job(jobId).stakeLocked, locked, "derived lock == Staking's lock");
        MarketParams memory p = _defaultParams();
        p.stakeMultiple = 5;
        _applyParams(p);
        assertEq(market.job(jobId).stakeLocked, locked, "a params change never reaches a live job");
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, locked);
        market.expire(jobId);
        assertEq(staking.lockedOf(provider), 0, "exactly the lock was released");
    }

    /// @dev While Open the job's latency field holds the best bid's latency: the view must not show it as an
    /// award, a leader improving its bid must not touch the runner-up's latency, and a failover must give the
    /// runner-up its own promised latency.
    function test_lean_bidLatenciesLiveInJobSlots() public {
        Intent memory intent = _intent().withFailover(true);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 4e17, 77);
        assertEq(market.job(jobId).latency, 0, "no award while Open");
        assertEq(market.providerDeadline(jobId), 0);
        assertEq(rmarket.bestBid(jobId).latency, 77);
        _bid(jobId, provider2, 5e17, 99);
        _bid(jobId, provider, 3e17, 50);
        assertEq(rmarket.bestBid(jobId).latency, 50);
        assertEq(rmarket.runnerUp(jobId).latency, 99, "the leader's own bid left the runner-up alone");
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        assertEq(market.job(jobId).latency, 50);
        assertEq(market.providerDeadline(jobId), block.timestamp + 50);
        vm.warp(block.timestamp + 51);
        market.expire(jobId);
        Job memory j = market.job(jobId);
        assertEq(j.provider, provider2);
        assertEq(j.latency, 99, "the runner-up's own latency");
        assertEq(market.providerDeadline(jobId), block.timestamp + 99);
        assertEq(j.stakeLocked, staking.lockedFor(provider2, jobId));
        assertEq(rmarket.runnerUp(jobId).provider, address(0), "used once");
    }

    function test_expire_failoverHappensOnce() public {
        Intent memory intent = _intent().withFailover(true);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider2, 5e17, 60);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        uint256 firstLock = market.job(jobId).stakeLocked;
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(staking.claimable(requester), firstLock, "first compensation only");
        assertEq(market.owed(requester), 0, "escrow kept for the runner-up");
        uint256 secondLock = market.job(jobId).stakeLocked;
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
        // each slashed stake is credited once; the escrow once, after the second expiry
        assertEq(staking.claimable(requester), firstLock + secondLock);
        assertEq(market.owed(requester), _escrow(intent.maxPrice));
        assertEq(token.balanceOf(address(market)), market.feesOwed() + market.owed(requester));
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.lockedOf(provider2), 0);
        assertEq(staking.stakeOf(provider), STAKE - firstLock);
        assertEq(staking.stakeOf(provider2), STAKE - secondLock);
        assertEq(staking.stats(provider).expired, 1);
        assertEq(staking.stats(provider2).expired, 1);
    }

    function test_expire_noFailoverWhenTooLate() public {
        Intent memory intent = _intent().withFailover(true);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider2, 5e17, 500);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
    }

    function test_expire_noFailoverWhenRunnerUpCannotLock() public {
        Intent memory intent = _intent().withFailover(true).withMinStake(STAKE);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider2, 5e17, 60);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        uint256 locked = market.job(jobId).stakeLocked;
        bytes32 other = _lockElsewhere(provider2, 1);
        uint256 stake2 = staking.stakeOf(provider2);
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
        assertEq(market.owed(requester), _escrow(intent.maxPrice));
        assertEq(staking.claimable(requester), locked);
        assertEq(
            staking.lockedOf(provider2), staking.lockedFor(provider2, other), "the runner-up locked nothing"
        );
        assertEq(staking.stakeOf(provider2), stake2, "a failover never penalises the runner-up");
        assertEq(_withdrawAll(requester), _escrow(intent.maxPrice));
        assertEq(
            token.balanceOf(address(market)), market.feesOwed() + _escrow(1e18), "the other job's escrow"
        );
    }

    function test_expire_noFailoverWhenNotAllowed() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider2, 5e17, 60);
        _bid(jobId, provider, 4e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
    }

    // ================================================================== gas (named for the snapshot)

    function test_gas_bidFirst() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
    }

    function test_gas_bidImproving() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        _bid(jobId, provider3, 3e17, 60);
    }
}
