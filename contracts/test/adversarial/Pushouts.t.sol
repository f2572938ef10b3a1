// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ReverseBookBase} from "./ReverseBookBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {AuctionTerms, Bid, Intent, Job, JobState, PROOF_OPTIMISTIC} from "../../src/MarketStructs.sol";

/// @notice The cheaper push-out (issue 14, gas target "bid < 60k" for a bid that pushes a runner-up off a full
/// book): a bid reads two job slots (the record is re-laid: the price cap beside the state and clock, the dispute
/// end beside the requester) and Staking logs no reservation (the market's `BidPlaced.pushedOut` does). Attacked:
/// - a squatter backing more books than its stake covers, or keeping its stake reserved after being pushed out
///   (the anti-grief property of finding 2 must survive: the release stays eager, in the push-out itself);
/// - a write to a re-laid slot (a bid's latencies, an award, an optimistic delivery, a challenge, an audit)
///   corrupting a field that now shares its slot: the requester (where the refund goes), the price cap (the
///   escrow), the deadline, the fee, the proof mode or the callback gas.
contract PushoutsTest is ReverseBookBase {
    using IntentBuilder for Intent;

    /// @dev The reservation of the default intent at `minStake`: max(minStake, maxPrice * stakeMultiple).
    function _reservation(bytes32 jobId) internal returns (uint256 r) {
        AuctionTerms memory t = _terms(jobId);
        r = uint256(t.maxPrice) * t.stakeMultiple;
        if (r < t.minStake) r = t.minStake;
    }

    /// @dev While Open the job's record is one word, the hash of its terms: `job()` shows the state alone, and
    /// the terms it was posted with still match (a view taking them reverts `TermsMismatch` otherwise).
    function _assertOpenWithTerms(bytes32 jobId, AuctionTerms memory t) internal view {
        Job memory open;
        open.state = JobState.Open;
        assertEq(keccak256(abi.encode(w.reverse.job(jobId))), keccak256(abi.encode(open)), "Open record");
        w.reverse.clearingPrice(jobId, t);
    }

    /// @dev One stake cannot back more books than it covers: a squatter with 100 staked bids on three jobs
    /// each reserving 100. The second and third bids revert, and the pushed-out runner-up is free at once.
    function test_pushout_squatterCannotBackMoreBooksThanItsStake() public {
        bytes32[3] memory jobs;
        for (uint256 k; k < 3; ++k) {
            jobs[k] = _post(IntentBuilder.init(requester, modelId).withMinStake(STAKE).withNonce(k));
        }
        uint256 r = _reservation(jobs[0]);
        assertEq(r, STAKE);
        _bid(jobs[0], provider, 4e17, 60);
        _bid(jobs[0], provider2, 6e17, 60);
        for (uint256 k = 1; k < 3; ++k) {
            AuctionTerms memory t = _terms(jobs[k]);
            vm.prank(provider);
            vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider, 0, r));
            w.reverse.bid(jobs[k], t, Bid(provider, 1, 1));
        }
        // provider3 pushes provider2 off job 0's book: provider2's reservation comes back in the same call, so it
        // can back another book (or unstake) right away: no pushed-out stake stays held
        _bid(jobs[0], provider3, 5e17, 60);
        assertEq(w.staking.lockedOf(provider2), 0, "the pushed-out runner-up is still reserved");
        assertEq(w.staking.availableOf(provider2), STAKE);
        _bid(jobs[1], provider2, 5e17, 60);
        assertEq(w.staking.lockedOf(provider2), r);
        // and the squatter's own books: still one, and its award cannot fail for want of stake
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider, 0, 1));
        w.staking.unstake(1);
        vm.warp(_terms(jobs[0]).auctionEnd);
        _award(jobs[0]);
        assertEq(uint256(w.reverse.job(jobs[0]).state), uint256(JobState.Awarded));
        assertEq(w.reverse.job(jobs[0]).provider, provider);
    }

    /// @dev The push-out is logged once, by the market: `BidPlaced.pushedOut` names the released runner-up, and
    /// Staking emits nothing for the reservation or the release.
    function test_pushout_loggedByTheBidAlone() public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId));
        _bid(jobId, provider, 4e17, 60);
        _bid(jobId, provider2, 6e17, 60);
        _recordLogs();
        _bid(jobId, provider3, 5e17, 30);
        assertEq(_recordedLogs().length, 1, "one event per push-out");
        // a new leader pushes the runner-up (provider3) off; the old leader becomes the runner-up
        vm.expectEmit(address(w.reverse));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider2, provider2, 1e17, 60, 1, provider3);
        _bid(jobId, provider2, 1e17, 60);
        assertEq(w.staking.lockedOf(provider3), 0);
        // improving one's own bid pushes nobody out
        vm.expectEmit(address(w.reverse));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider, provider, 3e17, 30, 2, address(0));
        _bid(jobId, provider, 3e17, 30);
    }

    /// @dev Bids of every kind (first, runner-up, push-out, new leader, replacement; any latency) write the
    /// book's words, never the job's Open word (the hash of its posted terms): the terms still match after each
    /// bid, the award writes the record from them, and the award and settlement pay from the posted terms.
    function testFuzz_bids_neverMoveTheJobsTerms(uint256 seed) public {
        Intent memory intent = IntentBuilder.init(requester, modelId).withMinStake(3e17).withPriceWeight(7000)
            .withFailover(true);
        intent.callbackGasLimit = 0;
        bytes32 jobId = _post(intent);
        AuctionTerms memory t = _terms(jobId);
        Job memory posted = _postedJob(jobId);
        _assertOpenWithTerms(jobId, t);
        address[3] memory ps = [provider, provider2, provider3];
        uint256 maxLatency = posted.deadline - posted.auctionEnd;
        for (uint256 s; s < 12; ++s) {
            uint256 r = uint256(keccak256(abi.encode(seed, s)));
            address p = ps[r % 3];
            uint96 price = uint96(1 + (r >> 8) % intent.maxPrice);
            uint32 latency = uint32(1 + (r >> 128) % maxLatency);
            vm.prank(p);
            // refused bids (not better) change nothing
            try w.reverse.bid(jobId, t, Bid(p, price, latency)) {} catch {}
            _assertOpenWithTerms(jobId, t);
        }
        vm.warp(posted.auctionEnd);
        Bid memory best = w.reverse.bestBid(jobId);
        uint256 requesterOwed = w.reverse.owed(requester);
        _award(jobId);
        Job memory awarded = w.reverse.job(jobId);
        _assertTerms(awarded, posted);
        assertEq(awarded.provider, best.provider);
        assertEq(awarded.latency, best.latency);
        assertEq(awarded.awardedAt, posted.auctionEnd);
        uint256[] memory out = _output();
        vm.prank(best.provider);
        w.reverse.deliver(jobId, out, _proof(intent.inputCommitment, out));
        Job memory settled = w.reverse.job(jobId);
        _assertTerms(settled, posted);
        assertEq(uint256(settled.state), uint256(JobState.Settled));
        // the requester gets back exactly the escrow of the posted cap less the price and its fee
        uint256 fee = uint256(settled.price) * posted.feeBps / 10_000;
        assertEq(
            w.reverse.owed(requester) - requesterOwed,
            _escrow(w.reverse, posted.maxPrice) - settled.price - fee,
            "refund not from the posted terms"
        );
    }

    /// @dev The dispute end now shares slot 0 with the requester, the fee, the proof mode and the callback gas:
    /// an optimistic delivery, a challenge and an audit write it. None of them may redirect the refund or change
    /// the job's terms, and the slash goes to the posted requester.
    function test_disputeWrites_neverMoveTheRequesterOrTerms() public {
        Intent memory intent = IntentBuilder.init(requester, modelId).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _post(intent);
        Job memory posted = _postedJob(jobId);
        _bid(jobId, provider, 5e17, 60);
        vm.warp(posted.auctionEnd);
        _award(jobId);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.reverse.deliver(jobId, out, "");
        Job memory delivered = w.reverse.job(jobId);
        _assertTerms(delivered, posted);
        assertEq(uint256(delivered.state), uint256(JobState.Delivered));
        assertEq(delivered.disputeEnd, block.timestamp + w.reverse.disputeTerms(jobId).challengeWindow);
        vm.prank(challenger);
        w.reverse.challenge(jobId);
        Job memory challenged = w.reverse.job(jobId);
        _assertTerms(challenged, posted);
        assertEq(challenged.disputeEnd, block.timestamp + w.reverse.disputeTerms(jobId).proofWindow);
        // the provider never proves: the slash and the escrow go to the posted requester
        vm.warp(challenged.disputeEnd + 1);
        uint256 before = w.reverse.owed(requester);
        w.reverse.expire(jobId);
        Job memory slashed = w.reverse.job(jobId);
        _assertTerms(slashed, posted);
        assertEq(uint256(slashed.state), uint256(JobState.Slashed));
        assertEq(w.reverse.owed(requester) - before, _escrow(w.reverse, posted.maxPrice));
        assertGt(w.staking.claimable(requester), 0);
        assertEq(w.reverse.owed(stranger), 0);
    }

    // ------------------------------------------------- the book's sides keep their slots when the lead changes
    // A bid writes only the side of the book it takes (its own, the runner-up's it pushes out, or the empty one)
    // and that side's latency; which side leads is read from the two scores, a tie from the bit the second side
    // writes with its latency. Attacked: a stale lead (a tie, a flipped book) awarding the wrong bid, a pushed-out
    // provider's reservation left held, a failover to the runner-up at the leader's latency.

    /// @dev A tie keeps the earlier leader in the lead, on either side: a newcomer tying the leader in the first
    /// slot (pushing out the runner-up there) is the runner-up, and the award goes to the leader in the second.
    function test_book_tieKeepsTheEarlierLeader_onEitherSide() public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId));
        _bid(jobId, provider, 4e17, 60);
        _bid(jobId, provider2, 3e17, 30); // takes the lead: the second slot
        vm.expectEmit(address(w.reverse));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider3, provider3, 3e17, 30, 2, provider);
        _bid(jobId, provider3, 3e17, 30); // ties the leader: runner-up, in the first slot
        assertEq(w.reverse.bestBid(jobId).provider, provider2, "a tie took the lead");
        assertEq(w.reverse.runnerUp(jobId).provider, provider3);
        assertEq(w.staking.lockedOf(provider), 0, "pushed-out reservation held");
        // the tying runner-up cannot tie again, nor the leader improve by nothing
        AuctionTerms memory t = _terms(jobId);
        vm.prank(provider3);
        vm.expectRevert();
        w.reverse.bid(jobId, t, Bid(provider3, 3e17, 30));
        vm.warp(t.auctionEnd);
        _award(jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(j.provider, provider2, "the tying bid was awarded");
        assertEq(j.price, 3e17);
        assertEq(j.latency, 30);
        // the mirror: a tie written into the second slot
        bytes32 other = _post(IntentBuilder.init(requester, modelId).withNonce(1));
        _bid(other, provider, 4e17, 60);
        _bid(other, provider2, 4e17, 60);
        assertEq(w.reverse.bestBid(other).provider, provider);
        assertEq(w.reverse.runnerUp(other).provider, provider2);
    }

    /// @dev After the lead changed (the leader in the second slot), the award fails over to the runner-up at its
    /// own promised latency and price, not the leader's.
    function test_book_failoverUsesTheRunnerUpsOwnLatency_afterTheLeadChanged() public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId).withFailover(true));
        _bid(jobId, provider, 4e17, 200);
        _bid(jobId, provider2, 3e17, 30);
        _bid(jobId, provider3, 35e16, 45); // pushes provider out of the first slot
        assertEq(w.staking.lockedOf(provider), 0);
        _bid(jobId, provider3, 3e17, 50); // the runner-up improves at a longer latency
        vm.warp(_terms(jobId).auctionEnd);
        _award(jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(j.provider, provider2);
        assertEq(j.latency, 30);
        assertEq(w.reverse.runnerUp(jobId).provider, provider3);
        assertEq(w.reverse.runnerUp(jobId).latency, 50);
        vm.warp(w.reverse.providerDeadline(jobId) + 1);
        w.reverse.expire(jobId);
        j = w.reverse.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.Awarded));
        assertEq(j.provider, provider3, "failover candidate");
        assertEq(j.latency, 50, "failover at the leader's latency");
        assertEq(j.price, 3e17);
        assertEq(w.reverse.providerDeadline(jobId), block.timestamp + 50);
    }

    /// @dev Reference model: the book as two ordered entries (best, runner-up), each bid applied by the rules of
    /// `bid` (a leader improves strictly; a strictly better newcomer leads and the old leader becomes the
    /// runner-up; else it must strictly beat the runner-up).
    struct RefBook {
        address best;
        uint96 bestPrice;
        uint32 bestLatency;
        address runner;
        uint96 runnerPrice;
        uint32 runnerLatency;
    }

    /// @dev Random bids (few prices and latencies, so ties are frequent) by the three providers: each accepted
    /// or refused as the reference book says, with its rank and the pushed-out runner-up, the book's views and
    /// reservations as the reference's after each, and the award (winner, second-score price, latency) and its
    /// failover (the runner-up at its own bid) as the reference's.
    function testFuzz_book_matchesTheOrderedReference(uint256 seed) public {
        bytes32 jobId = _post(IntentBuilder.init(requester, modelId).withPriceWeight(6000).withFailover(true));
        RefBook memory ref;
        address[3] memory ps = [provider, provider2, provider3];
        uint256 r = _reservation(jobId);
        for (uint256 s; s < 10; ++s) {
            uint256 x = uint256(keccak256(abi.encode(seed, s)));
            address p = ps[x % 3];
            uint96 price = uint96(1e17 * (1 + (x >> 8) % 4));
            uint32 latency = uint32(30 * (1 + (x >> 16) % 3));
            _step(jobId, ref, p, price, latency);
            for (uint256 k; k < 3; ++k) {
                bool held = ps[k] == ref.best || ps[k] == ref.runner;
                assertEq(w.staking.lockedOf(ps[k]), held ? r : 0, "reservation");
            }
        }
        AuctionTerms memory t = _terms(jobId);
        vm.warp(t.auctionEnd);
        uint256 clearing = w.reverse.clearingPrice(jobId, t);
        assertEq(clearing, _refClearing(t, ref), "second-score price");
        _award(jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(j.provider, ref.best);
        assertEq(j.price, clearing);
        assertEq(j.latency, ref.bestLatency);
        if (ref.runner == address(0)) return;
        vm.warp(w.reverse.providerDeadline(jobId) + 1);
        w.reverse.expire(jobId);
        j = w.reverse.job(jobId);
        assertEq(j.provider, ref.runner);
        assertEq(j.price, ref.runnerPrice);
        assertEq(j.latency, ref.runnerLatency, "failover latency");
    }

    /// @dev One bid, accepted (with the reference's rank and push-out) or refused as the reference says.
    function _step(bytes32 jobId, RefBook memory ref, address p, uint96 price, uint32 latency) internal {
        AuctionTerms memory t = _terms(jobId);
        (bool ok, uint8 rank, address pushedOut) = _refBid(t, ref, p, price, latency);
        vm.prank(p);
        if (ok) {
            vm.expectEmit(address(w.reverse));
            emit IReverseAuctionMarket.BidPlaced(jobId, p, p, price, latency, rank, pushedOut);
            w.reverse.bid(jobId, t, Bid(p, price, latency));
        } else {
            vm.expectRevert();
            w.reverse.bid(jobId, t, Bid(p, price, latency));
        }
        _assertBook(jobId, ref);
    }

    function _refBid(AuctionTerms memory t, RefBook memory ref, address p, uint96 price, uint32 latency)
        internal
        view
        returns (bool ok, uint8 rank, address pushedOut)
    {
        uint256 score = w.reverse.scoreOf(t, price, latency);
        bool onBook = p == ref.best || p == ref.runner;
        if (ref.best == address(0)) {
            (ref.best, ref.bestPrice, ref.bestLatency) = (p, price, latency);
            return (true, 1, address(0));
        }
        uint256 bestScore = w.reverse.scoreOf(t, ref.bestPrice, ref.bestLatency);
        pushedOut = onBook ? address(0) : ref.runner;
        if (p == ref.best) {
            if (score >= bestScore) return (false, 0, address(0));
            (ref.bestPrice, ref.bestLatency) = (price, latency);
            return (true, 1, address(0));
        }
        if (score < bestScore) {
            (ref.runner, ref.runnerPrice, ref.runnerLatency) = (ref.best, ref.bestPrice, ref.bestLatency);
            (ref.best, ref.bestPrice, ref.bestLatency) = (p, price, latency);
            return (true, 1, pushedOut);
        }
        if (ref.runner != address(0) && score >= w.reverse.scoreOf(t, ref.runnerPrice, ref.runnerLatency)) {
            return (false, 0, address(0));
        }
        (ref.runner, ref.runnerPrice, ref.runnerLatency) = (p, price, latency);
        return (true, 2, pushedOut);
    }

    function _refClearing(AuctionTerms memory t, RefBook memory ref) internal view returns (uint256 price) {
        price = ref.bestPrice;
        if (ref.runner == address(0)) return price;
        uint256 maxLatency = t.deadline - t.auctionEnd;
        uint256 runnerScore = w.reverse.scoreOf(t, ref.runnerPrice, ref.runnerLatency);
        uint256 latencyPart = (10_000 - uint256(t.priceWeightBps)) * ref.bestLatency * t.maxPrice;
        uint256 tie = (runnerScore - latencyPart) / (uint256(t.priceWeightBps) * maxLatency);
        if (tie > t.maxPrice) tie = t.maxPrice;
        if (tie > price) price = tie;
    }

    function _assertBook(bytes32 jobId, RefBook memory ref) internal view {
        Bid memory best = w.reverse.bestBid(jobId);
        Bid memory runner = w.reverse.runnerUp(jobId);
        assertEq(best.provider, ref.best, "best");
        assertEq(best.price, ref.bestPrice);
        assertEq(best.latency, ref.bestLatency);
        assertEq(runner.provider, ref.runner, "runner-up");
        assertEq(runner.price, ref.runnerPrice);
        assertEq(runner.latency, ref.runnerLatency);
    }

    /// @dev The fields fixed at posting.
    function _assertTerms(Job memory j, Job memory posted) internal pure {
        assertEq(j.requester, posted.requester, "requester");
        assertEq(j.maxPrice, posted.maxPrice, "maxPrice");
        assertEq(j.deadline, posted.deadline, "deadline");
        assertEq(j.auctionEnd, posted.auctionEnd, "auctionEnd");
        assertEq(j.postedAt, posted.postedAt, "postedAt");
        assertEq(j.minStake, posted.minStake, "minStake");
        assertEq(j.stakeMultiple, posted.stakeMultiple, "stakeMultiple");
        assertEq(j.priceWeightBps, posted.priceWeightBps, "priceWeightBps");
        assertEq(j.feeBps, posted.feeBps, "feeBps");
        assertEq(j.proofMode, posted.proofMode, "proofMode");
        assertEq(j.callbackGasLimit, posted.callbackGasLimit, "callbackGasLimit");
        assertTrue(j.allowFailover == posted.allowFailover, "allowFailover");
        assertEq(j.modelId, posted.modelId, "modelId");
        assertEq(j.inputCommitment, posted.inputCommitment, "inputCommitment");
    }
}
