// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {BlocklistToken} from "../mocks/BlocklistToken.sol";
import {TestToken} from "../../src/TestToken.sol";
import {Staking} from "../../src/Staking.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {ReverseAuctionMarket} from "../../src/ReverseAuctionMarket.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {
    AuctionTerms,
    Bid,
    Intent,
    Job,
    JobState,
    JobTerms,
    MarketParams,
    AUCTION_DUTCH,
    PROOF_OPTIMISTIC
} from "../../src/MarketStructs.sol";

/// @notice One regression test per finding of the outside security review (issue 14), each named for the
/// attack it replays: the attack is run as the review ran it and the test asserts the outcome the fix
/// guarantees.
contract ReviewFindingsTest is AdversarialBase {
    using IntentBuilder for Intent;

    TestToken internal tt;
    World internal w;

    function setUp() public {
        _deployCore();
        tt = new TestToken("Tender USD", "TUSD", 18);
        w = _world(IERC20(address(tt)), tt.mint);
    }

    // ------------------------------------------------------------------ helpers

    function _post(ReverseAuctionMarket m, Intent memory intent) internal returns (bytes32 jobId) {
        vm.prank(intent.requester);
        jobId = m.post(intent);
    }

    function _bid(bytes32 jobId, address who, uint96 price, uint32 latency) internal {
        _bidOn(w.reverse, jobId, who, Bid(who, price, latency));
    }

    /// @dev A fresh address with `amount` staked in the world's Staking.
    function _staker(string memory name, uint256 amount) internal returns (address who) {
        who = makeAddr(name);
        tt.mint(who, amount);
        vm.startPrank(who);
        tt.approve(address(w.staking), amount);
        w.staking.stake(amount);
        vm.stopPrank();
    }

    /// @dev Locks `amount` of `who`'s stake in a Dutch job of its own (requester `stranger`).
    function _lockInOwnDutchJob(address who, uint256 amount, uint256 nonce) internal returns (bytes32 jobId) {
        tt.mint(stranger, 10e18);
        vm.prank(stranger);
        tt.approve(address(w.dutch), type(uint256).max);
        Intent memory intent = IntentBuilder.init(stranger, modelId).withAuctionType(AUCTION_DUTCH)
            .withStartPrice(1e15).withMinStake(amount).withNonce(nonce);
        vm.prank(stranger);
        jobId = w.dutch.post(intent);
        vm.prank(who);
        w.dutch.fill(jobId, who, 60);
    }

    // ------------------------------------------------------------------ 1. late fallback award

    /// @dev The requester's shill outbids an honest provider, unstakes in the last second before the deadline
    /// and the requester awards: the honest runner-up must not be awarded 1 s for its 60 s promise (and
    /// slashed to the requester); the shill cannot walk away by unstaking either.
    function test_lateFallbackAward_shillUnstakesAtTheDeadline_honestRunnerUpIsNotAwarded() public {
        Intent memory intent = IntentBuilder.init(requester, modelId).withMinStake(50e18);
        bytes32 jobId = _post(w.reverse, intent);
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider3, 4e17, 60);
        Job memory j = _postedJob(jobId);
        vm.warp(j.deadline - 1);
        // the shill unstakes all it can: its bid's reservation stays
        vm.prank(provider3);
        w.staking.unstake(STAKE - 50e18);
        uint256 honestStake = w.staking.stakeOf(provider);

        vm.expectEmit(address(w.reverse));
        emit IMarketEvents.AwardSkippedLate(jobId, provider3, 60, j.deadline);
        vm.expectEmit(address(w.reverse));
        emit IMarketEvents.AwardSkippedLate(jobId, provider, 60, j.deadline);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.prank(requester);
        w.reverse.award(jobId, t, jt);

        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Refunded), "nobody had its time");
        assertEq(w.staking.lockedOf(provider), 0, "honest runner-up locked");
        assertEq(w.staking.stakeOf(provider), honestStake, "honest runner-up lost stake");
        assertEq(w.staking.lockedOf(provider3), 0, "reservations released");
    }

    /// @dev Without an attacker: the award comes with 30 s left of a 60 s promise (the best, whose reservation
    /// covers its lock, is late too).
    function test_lateFallbackAward_runnerUpWith30sLeftOfA60sPromiseIsSkipped() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(STAKE));
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 4e17, 60);
        vm.warp(_terms(jobId).deadline - 30);
        _awardOn(w.reverse, jobId);
        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Refunded));
        assertEq(w.staking.lockedOf(provider), 0);
        assertEq(w.staking.lockedOf(provider2), 0);
    }

    // ------------------------------------------------------------------ 2. book squatting

    /// @dev Posts a Dutch job of `stranger`'s (minStake `amount`) for `who` to fill.
    function _ownDutchJob(uint256 amount, uint256 nonce) internal returns (bytes32 jobId) {
        tt.mint(stranger, 10e18);
        vm.prank(stranger);
        tt.approve(address(w.dutch), type(uint256).max);
        Intent memory intent = IntentBuilder.init(stranger, modelId).withAuctionType(AUCTION_DUTCH)
            .withStartPrice(1e15).withMinStake(amount).withNonce(nonce);
        vm.prank(stranger);
        jobId = w.dutch.post(intent);
    }

    /// @dev Two shills take both book slots (the honest bid is pushed out) and then try to make their stake
    /// unavailable the instant, reversible way: each fills a Dutch job of its own with its whole stake, or
    /// unstakes it. On the old code both were skipped at the award (the penalty found no free stake) and the
    /// auction ended Refunded for the cost of gas. Now each bid reserved the stake its award needs (counted in
    /// Staking's `locked`): the Dutch fill and the unstake are refused, and the award goes to the best shill.
    function test_bookSquatting_squatterLocksItsStakeInItsOwnDutchJob_cannotKillTheReverseAuction() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(STAKE));
        _bid(jobId, provider, 5e17, 60);
        _bid(jobId, provider2, 3e17, 60);
        _bid(jobId, provider3, 4e17, 60);
        assertEq(w.reverse.runnerUp(jobId).provider, provider3, "honest bid pushed out");
        assertEq(w.staking.availableOf(provider), STAKE, "the pushed-out bid got its reservation back");
        assertEq(w.staking.availableOf(provider2), 0, "the best shill's stake is reserved");

        bytes32 dutchJob = _ownDutchJob(STAKE, 1);
        vm.prank(provider2);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider2, 0, STAKE));
        w.dutch.fill(dutchJob, provider2, 60);
        vm.prank(provider3);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider3, 0, STAKE));
        w.staking.unstake(STAKE);

        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(w.reverse, jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.Awarded), "the auction is not killed");
        assertEq(j.provider, provider2);
        assertEq(w.staking.lockedFor(provider2, jobId), STAKE);
        assertEq(w.staking.lockedOf(provider2), STAKE, "the reservation became the lock");
        assertEq(w.staking.lockedOf(provider3), 0, "the runner-up's reservation is released at the award");
        // walking away now costs the shill its whole stake
        vm.warp(w.reverse.providerDeadline(jobId) + 1);
        w.reverse.expire(jobId);
        assertEq(w.staking.claimable(requester), STAKE);
        assertEq(w.staking.stakeOf(provider2), 0);
    }

    /// @dev Reserve in the reverse market, then lock the same stake in a Dutch fill: refused.
    function test_bookSquatting_reservedStakeCannotBeLockedInADutchFill() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(60e18));
        _bid(jobId, provider2, 3e17, 60);
        bytes32 dutchJob = _ownDutchJob(60e18, 1);
        vm.prank(provider2);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider2, 40e18, 60e18)
        );
        w.dutch.fill(dutchJob, provider2, 60);
        // the unreserved rest still fills a job
        _lockInOwnDutchJob(provider2, 40e18, 2);
        assertEq(w.staking.availableOf(provider2), 0);
        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(w.reverse, jobId);
        assertEq(w.reverse.job(jobId).provider, provider2, "the reservation held to the award");
        assertEq(w.staking.lockedFor(provider2, jobId), 60e18);
    }

    /// @dev Reserve, then unstake and redeem everything: only the unreserved stake leaves; the award locks.
    function test_bookSquatting_reservedStakeCannotBeUnstaked() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(60e18));
        _bid(jobId, provider3, 4e17, 60);
        vm.prank(provider3);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider3, 40e18, STAKE));
        w.staking.unstake(STAKE);
        vm.prank(provider3);
        w.staking.unstake(40e18);
        vm.warp(block.timestamp + w.staking.unstakingDelay());
        vm.prank(provider3);
        w.staking.redeem();
        assertEq(w.staking.stakeOf(provider3), 60e18);
        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(w.reverse, jobId);
        assertEq(w.reverse.job(jobId).provider, provider3);
        assertEq(w.staking.lockedFor(provider3, jobId), 60e18);
    }

    /// @dev One 100-token stake tried to back bids on three jobs each requiring 100: the first bid reserves the
    /// whole stake, the other two are refused, so the stake backs one job only.
    function test_bookSquatting_oneHundredTokenStake_cannotBackBidsOnThreeHundredStakeJobs() public {
        bytes32[3] memory jobs;
        for (uint256 i; i < 3; ++i) {
            jobs[i] =
                _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(STAKE).withNonce(i));
        }
        _bid(jobs[0], provider3, 4e17, 60);
        assertEq(w.staking.availableOf(provider3), 0);
        for (uint256 i = 1; i < 3; ++i) {
            AuctionTerms memory t = _terms(jobs[i]);
            vm.prank(provider3);
            vm.expectRevert(
                abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider3, 0, STAKE)
            );
            w.reverse.bid(jobs[i], t, Bid(provider3, 4e17, 60));
            assertEq(w.reverse.bestBid(jobs[i]).provider, address(0), "no book slot without stake");
        }
        assertEq(w.staking.lockedOf(provider3), STAKE, "reservations + locks <= stake");
    }

    /// @dev One stake over several jobs, honestly: a provider with 200 bids on two 100-stake jobs (each
    /// reserves 100), a third bid is refused; the refund of one unawarded job frees its reservation again.
    function test_bookSquatting_oneStakeOverSeveralJobs_reservationsFollowTheBooks() public {
        address big = _staker("big", 200e18);
        bytes32[3] memory jobs;
        for (uint256 i; i < 3; ++i) {
            jobs[i] =
                _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(STAKE).withNonce(i));
        }
        _bid(jobs[0], big, 4e17, 60);
        _bid(jobs[1], big, 4e17, 60);
        // improving its own bid reserves nothing more
        _bid(jobs[1], big, 3e17, 60);
        assertEq(w.staking.lockedOf(big), 200e18);
        AuctionTerms memory t2 = _terms(jobs[2]);
        vm.prank(big);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, big, 0, STAKE));
        w.reverse.bid(jobs[2], t2, Bid(big, 4e17, 60));
        // pushed off job 1's book by two better bids: its reservation comes back at once
        _bid(jobs[1], provider, 2e17, 60);
        _bid(jobs[1], provider2, 1e17, 60);
        assertEq(w.staking.lockedOf(big), STAKE);
        _bid(jobs[2], big, 4e17, 60);
        vm.warp(_terms(jobs[0]).auctionEnd);
        _awardOn(w.reverse, jobs[0]);
        assertEq(w.staking.lockedFor(big, jobs[0]), STAKE);
        vm.warp(t2.deadline);
        _refundOn(w.reverse, jobs[2]);
        assertEq(w.staking.lockedOf(big), STAKE, "only job 0's lock is left");
    }

    /// @dev An auction nobody awards ends in a refund past its deadline: both bidders get their reservations back.
    function test_bookSquatting_unawardedAuctionRefunded_releasesEveryReservation() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId).withMinStake(STAKE));
        _bid(jobId, provider2, 3e17, 60);
        _bid(jobId, provider3, 4e17, 60);
        assertEq(w.staking.lockedOf(provider2) + w.staking.lockedOf(provider3), 2 * STAKE);
        vm.warp(_terms(jobId).deadline);
        _refundOn(w.reverse, jobId);
        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Refunded));
        assertEq(w.staking.lockedOf(provider2), 0);
        assertEq(w.staking.lockedOf(provider3), 0);
    }

    // ------------------------------------------------------------------ 3. second-score payment, first-price collateral

    /// @dev A 1-wei bid wins at the runner-up's 0.5 token: its lock must cover 0.5 token times the bond
    /// multiple, not its own 1 wei.
    function test_secondScore_oneWeiBidWinsAtHalfAToken_lockCoversTheClearingPrice() public {
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId));
        _bid(jobId, provider, 1, 60);
        _bid(jobId, provider2, 5e17, 60);
        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(w.reverse, jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(j.provider, provider);
        assertEq(j.price, 5e17);
        assertEq(j.stakeLocked, 1e18, "lock = clearing price * stakeMultiple");
    }

    /// @dev A winner staking only the 2 wei its 1-wei bid needs is paid what its stake covers (1 wei), never
    /// 0.5 token on a 2-wei lock.
    /// @dev A bidder staking only the 2 wei its 1-wei bid needs cannot take a book slot at all (issue 14,
    /// finding 2 changed this on purpose): a bid reserves the stake for the most it can be paid,
    /// max(minStake, maxPrice * stakeMultiple), so it is never paid 0.5 token on a 2-wei lock.
    function test_secondScore_dustStakedWinnerIsPaidOnlyWhatItsLockCovers() public {
        address dust = _staker("dust", 2);
        bytes32 jobId = _post(w.reverse, IntentBuilder.init(requester, modelId));
        AuctionTerms memory t = _terms(jobId);
        uint256 needed = uint256(t.maxPrice) * t.stakeMultiple;
        vm.prank(dust);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, dust, 2, needed));
        w.reverse.bid(jobId, t, Bid(dust, 1, 60));
    }

    // ------------------------------------------------------------------ 4. removed market

    /// @dev After the owner removes a market from Staking, its live job still expires: the cheating provider
    /// is slashed, the escrow comes back.
    function test_removedMarket_ownerRemovesTheMarket_itsLateJobStillExpiresAndSlashes() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent());
        uint256 locked = w.dutch.job(jobId).stakeLocked;
        vm.prank(owner);
        w.staking.setMarket(address(w.dutch), false);
        vm.warp(w.dutch.providerDeadline(jobId) + 1);
        w.dutch.expire(jobId);
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Expired));
        assertEq(w.staking.claimable(requester), locked);
        assertEq(w.dutch.owed(requester), _escrow(w.dutch, 1e18));
        assertEq(w.staking.stats(provider).expired, 1);
    }

    // ------------------------------------------------------------------ 5. token mismatch

    /// @dev A market over one token and a Staking over another would credit stake tokens as payment tokens.
    function test_tokenMismatch_marketOverAnotherTokenThanStaking_refusedAtDeployment() public {
        TestToken other = new TestToken("Other", "OTH", 18);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.TokenMismatch.selector, address(tt), address(other))
        );
        new DutchAuctionMarket(other, registry, w.staking, treasury, owner, _defaultParams());
    }

    // ------------------------------------------------------------------ 6. owner powers on live jobs

    /// @dev The owner raises the challenge bond to 900 tokens and cuts the proof window to 1 s: a job posted
    /// before keeps its terms (bond 0.1 token from a challenger with unlimited approval, 900 s to prove), and
    /// the change itself only takes effect after the delay.
    function test_ownerPowers_bondRaisedAndProofWindowCut_liveJobKeepsItsTerms() public {
        MarketParams memory evil = _defaultParams();
        evil.challengeBond = 900e18;
        evil.proofWindow = 1;
        vm.prank(owner);
        w.dutch.setParams(evil);
        assertEq(w.dutch.params().challengeBond, 1e17, "applied at once");
        (, uint40 effectiveAt) = w.dutch.pendingParams();
        vm.warp(effectiveAt - 10);
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        vm.warp(effectiveAt);
        w.dutch.applyParams();
        assertEq(w.dutch.params().challengeBond, 900e18);

        uint256 before = tt.balanceOf(challenger);
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        assertEq(before - tt.balanceOf(challenger), 1e17, "bond other than the job's");
        assertEq(w.dutch.job(jobId).disputeEnd, block.timestamp + 900, "proof window other than the job's");
        // the honest provider proves within its 900 s and is not slashed
        vm.warp(block.timestamp + 600);
        vm.prank(provider);
        w.dutch.prove(jobId, _proof(_dutchIntent().inputCommitment, _output()));
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Settled));
    }

    /// @dev A market the owner adds once providers have staked cannot touch stake before every provider could
    /// have unstaked (MARKET_DELAY > MAX_UNSTAKING_DELAY).
    function test_ownerPowers_addsAMarketAfterStaking_itWaitsLongerThanAnyUnstaking() public {
        address rogue = makeAddr("rogue-market");
        vm.prank(owner);
        w.staking.setMarket(rogue, true);
        uint64 activeAt = w.staking.marketActiveAt(rogue);
        assertEq(activeAt, block.timestamp + w.staking.MARKET_DELAY());
        assertGt(w.staking.MARKET_DELAY(), w.staking.MAX_UNSTAKING_DELAY());
        vm.prank(rogue);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, rogue));
        w.staking.lock(provider, keccak256("x"), STAKE, 0);
        // a provider that starts unstaking now is out before the market is active
        vm.prank(provider);
        w.staking.unstake(STAKE);
        vm.warp(activeAt - 1);
        vm.prank(provider);
        assertEq(w.staking.redeem(), STAKE);
    }

    // ------------------------------------------------------------------ 7. reputation and self-challenge

    /// @dev Self-dealt 1-wei jobs (fee rounds to 0) settle but add nothing to the provider's reputation.
    function test_reputation_selfDealtOneWeiJobs_doNotCount() public {
        IStaking.Stats memory before = w.staking.stats(provider);
        for (uint256 i; i < 3; ++i) {
            Intent memory intent = _dutchIntent().withMaxPrice(1).withStartPrice(1).withNonce(i);
            bytes32 jobId = _postAndFill(w.dutch, intent);
            uint256[] memory out = _output();
            vm.prank(provider);
            w.dutch.deliver(jobId, out, _proof(intent.inputCommitment, out));
            assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Settled));
        }
        IStaking.Stats memory afterwards = w.staking.stats(provider);
        assertEq(afterwards.jobsWon, before.jobsWon, "jobsWon grew without a paid job");
        assertEq(
            afterwards.deliveredInTime, before.deliveredInTime, "deliveredInTime grew without a paid job"
        );
    }

    /// @dev A provider that delivered garbage challenges itself from a second address: it recovers the
    /// challenger's share of its own slash but still loses more than the price it would have been paid.
    function test_selfChallenge_garbageProviderChallengesItself_stillLosesMoreThanItsPrice() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        Job memory j = w.dutch.job(jobId);
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        address sybil = makeAddr("sybil");
        tt.mint(sybil, 1e18);
        vm.startPrank(sybil);
        tt.approve(address(w.dutch), type(uint256).max);
        w.dutch.challenge(jobId);
        vm.stopPrank();
        uint256 wealthBefore = w.staking.stakeOf(provider) + tt.balanceOf(sybil);
        vm.warp(w.dutch.job(jobId).disputeEnd + 1);
        w.dutch.expire(jobId);
        vm.startPrank(sybil);
        w.dutch.withdraw();
        w.staking.claim();
        vm.stopPrank();
        uint256 wealthAfter = w.staking.stakeOf(provider) + tt.balanceOf(sybil);
        assertGe(wealthBefore - wealthAfter, j.price, "self-challenge made cheating cheaper than its price");
        // and the owner cannot set a reward that would make it cheaper
        MarketParams memory p = _defaultParams();
        p.stakeMultiple = 1;
        p.challengerRewardBps = 9000;
        vm.prank(owner);
        vm.expectRevert(IMarketEvents.BadParams.selector);
        w.dutch.setParams(p);
    }

    // ------------------------------------------------------------------ 8. blocklisting token

    /// @dev The token blocklists Staking: an awarded job past its deadline still expires and its requester's
    /// escrow comes back; so does an unproven audit.
    function test_blocklistedStaking_awardedJobPastItsDeadline_stillReachesATerminalState() public {
        BlocklistToken blt = new BlocklistToken();
        World memory b = _world(IERC20(address(blt)), blt.mint);
        vm.prank(requester);
        bytes32 jobId = b.dutch.post(_dutchIntent());
        vm.prank(provider);
        b.dutch.fill(jobId, provider, 60);
        uint256 locked = b.dutch.job(jobId).stakeLocked;
        blt.setBlocked(address(b.staking), true);
        vm.warp(b.dutch.providerDeadline(jobId) + 1);
        vm.prank(stranger);
        b.dutch.expire(jobId);
        assertEq(uint256(b.dutch.job(jobId).state), uint256(JobState.Expired));
        uint256 before = blt.balanceOf(requester);
        vm.prank(requester);
        b.dutch.withdraw();
        assertEq(blt.balanceOf(requester), before + _escrow(b.dutch, 1e18), "escrow came back");
        // the compensation waits in Staking until the token lets it out
        assertEq(b.staking.claimable(requester), locked);
        blt.setBlocked(address(b.staking), false);
        vm.prank(requester);
        assertEq(b.staking.claim(), locked);
    }

    // ------------------------------------------------------------------ 9. audit timing

    /// @dev Under the old draw a provider read prevrandao and delivered in a block that skipped the audit.
    /// Now the draw is the hash of the block after the delivery: whatever the delivery block's prevrandao,
    /// the outcome is set by a hash the provider could not know when it delivered.
    function test_auditTiming_providerPicksADeliveryBlock_drawUsesTheNextBlocksHash() public {
        bytes32 halfModel = registry.register(_modelInfo(3, 5000));
        bytes32 jobId =
            _postAndFill(w.dutch, _dutchIntent().withModel(halfModel).withProofMode(PROOF_OPTIMISTIC));
        // a seed that audits and one that does not
        (bytes32 auditSeed, bytes32 passSeed) = _seeds(jobId, 5000);
        // the provider times its delivery: under the old draw keccak(prevrandao, jobId) this block audits
        // and the other does not; neither decides anything now
        (bytes32 oldAudits, bytes32 oldPasses) = _seeds(jobId, 5000);
        uint256 snap = vm.snapshotState();
        for (uint256 k; k < 2; ++k) {
            vm.prevrandao(k == 0 ? oldPasses : oldAudits);
            vm.prank(provider);
            w.dutch.deliver(jobId, _output(), "");
            assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Delivered), "drawn at delivery");
            uint256 d = block.number;
            vm.roll(d + 2);
            vm.setBlockhash(d + 1, k == 0 ? auditSeed : passSeed);
            w.dutch.drawAudit(jobId);
            assertEq(
                uint256(w.dutch.job(jobId).state),
                uint256(k == 0 ? JobState.ProofRequired : JobState.Delivered),
                "outcome not set by the next block's hash"
            );
            vm.revertToState(snap);
        }
    }

    /// @dev Letting the seed's hash lapse (256 blocks) does not dodge the audit: the draw then audits.
    function test_auditTiming_providerWaitsOutTheBlockhashWindow_isAudited() public {
        bytes32 halfModel = registry.register(_modelInfo(3, 1));
        bytes32 jobId =
            _postAndFill(w.dutch, _dutchIntent().withModel(halfModel).withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        vm.roll(block.number + 300);
        vm.warp(w.dutch.job(jobId).disputeEnd);
        w.dutch.finalize(jobId);
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.ProofRequired));
    }

    function _seeds(bytes32 jobId, uint256 rate) internal pure returns (bytes32 audit, bytes32 pass) {
        for (uint256 i = 1; audit == 0 || pass == 0; ++i) {
            bytes32 h = keccak256(abi.encode(i));
            bool audited = uint256(keccak256(abi.encode(h, jobId))) % 10_000 < rate;
            if (audited && audit == 0) audit = h;
            if (!audited && pass == 0) pass = h;
        }
    }

    // ------------------------------------------------------------------ 10. input risk

    /// @dev The requester posts a commitment its input does not match. The honest provider declines right
    /// after the award: nothing is slashed, its stake is released at its provider deadline, the escrow goes
    /// back. A lazy provider cannot use the same door to walk away late.
    function test_inputRisk_requesterCommitsToAnotherInput_honestProviderDeclinesUnslashed() public {
        Intent memory intent = _dutchIntent().withCommitment(0xbad);
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256 stakeBefore = w.staking.stakeOf(provider);
        uint256 releaseAt = w.dutch.providerDeadline(jobId);
        vm.warp(block.timestamp + 15);
        vm.expectEmit(address(w.dutch));
        emit IMarketEvents.Declined(jobId, provider, uint40(releaseAt));
        vm.prank(provider);
        w.dutch.decline(jobId);
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Refunded));
        assertEq(w.dutch.owed(requester), _escrow(w.dutch, 1e18));
        assertEq(w.staking.claimable(requester), 0, "the requester gained from its bad input");
        // the stake stays locked as long as the work would have
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, releaseAt));
        w.dutch.releaseDeclined(jobId, provider);
        vm.warp(releaseAt + 1);
        vm.prank(stranger);
        w.dutch.releaseDeclined(jobId, provider);
        assertEq(w.staking.stakeOf(provider), stakeBefore, "slashed");
        assertEq(w.staking.lockedOf(provider), 0);
        assertEq(w.staking.stats(provider).deliveredInTime, 0, "a decline earned reputation");

        // a lazy provider past the first quarter of its latency cannot decline: it is slashed on expiry
        bytes32 lazy = _postAndFill(w.dutch, _dutchIntent().withNonce(1));
        uint256 end = block.timestamp + 60 / 4;
        vm.warp(end + 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.DeclineWindowClosed.selector, lazy, end));
        w.dutch.decline(lazy);
        vm.warp(w.dutch.providerDeadline(lazy) + 1);
        w.dutch.expire(lazy);
        assertEq(uint256(w.dutch.job(lazy).state), uint256(JobState.Expired));
    }
}
