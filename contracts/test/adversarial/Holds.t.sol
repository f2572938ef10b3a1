// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {IQuoteMarket, QuotedJob} from "../../src/interfaces/IQuoteMarket.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {JobState} from "../../src/MarketStructs.sol";

/// @notice The exploits feared for stake *holds* (a quoted job's stake counted in the provider's `lockedOf`
/// only, its amount kept by the market in the job's hashed terms, no per-job lock slot in Staking): a caller
/// that is not a market (the provider itself above all) releasing or forfeiting a hold; a market the owner only
/// scheduled (inside `MARKET_DELAY`), or scheduled and removed before it ever ran, taking stake; a hold
/// released twice (settled twice, or settled and expired); a provider unstaking what a job holds. And what must
/// keep working: a market the owner removed still finishes the jobs it holds stake for.
contract HoldsTest is QuoteFixture {
    address internal fakeMarket = makeAddr("fake-market");

    function setUp() public {
        _deployQuote();
        vm.prank(owner);
        staking.setMarket(fakeMarket, true);
        _activate(staking, fakeMarket);
    }

    // ------------------------------------------------------------------ Staking: who may touch a hold

    function test_hold_onlyAnActiveMarket() public {
        address[2] memory callers = [stranger, qp];
        for (uint256 i; i < callers.length; ++i) {
            vm.startPrank(callers[i]);
            vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, callers[i]));
            staking.placeHold(qp, 1e18, 1e16);
            vm.stopPrank();
        }
        // scheduled after the first stake: inside MARKET_DELAY it cannot hold, release or forfeit
        address scheduled = makeAddr("scheduled-market");
        vm.prank(owner);
        staking.setMarket(scheduled, true);
        vm.startPrank(scheduled);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, scheduled));
        staking.placeHold(qp, 1e18, 1e16);
        vm.stopPrank();
        _expectNoHoldEffect(scheduled);
        assertEq(staking.lockedOf(qp), 0);
    }

    function test_releaseAndForfeit_refusedToTheProviderAndStrangers() public {
        vm.prank(fakeMarket);
        staking.placeHold(qp, 30e18, 1e16);
        _expectNoHoldEffect(qp);
        _expectNoHoldEffect(stranger);
        assertEq(staking.lockedOf(qp), 30e18, "still held");
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, qp, STAKE - 30e18, STAKE));
        staking.unstake(STAKE);
    }

    /// @dev Scheduled and removed before it ever ran: it never held anything, so it may not take stake
    /// (else scheduling then removing a market would skip MARKET_DELAY).
    function test_forfeit_refusedToAMarketRemovedBeforeItRan() public {
        vm.prank(fakeMarket);
        staking.placeHold(qp, 30e18, 1e16);
        address never = makeAddr("never-ran");
        vm.startPrank(owner);
        staking.setMarket(never, true);
        staking.setMarket(never, false);
        vm.stopPrank();
        _expectNoHoldEffect(never);
        assertEq(staking.lockedOf(qp), 30e18);
        assertEq(staking.stakeOf(qp), STAKE);
    }

    function test_retiredMarket_finishesItsHoldsButTakesNoNewOnes() public {
        vm.prank(fakeMarket);
        staking.placeHold(qp, 30e18, 1e16);
        vm.prank(owner);
        staking.setMarket(fakeMarket, false);
        vm.startPrank(fakeMarket);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, fakeMarket));
        staking.placeHold(qp, 1e18, 1e16);
        staking.freeHold(qp, 10e18, 1e16);
        staking.forfeitHold(qp, bytes32("job"), 20e18, requester);
        vm.stopPrank();
        assertEq(staking.lockedOf(qp), 0);
        assertEq(staking.stakeOf(qp), STAKE - 20e18);
        assertEq(staking.claimable(requester), 20e18);
        assertEq(staking.stats(qp).expired, 1);
        assertEq(staking.stats(qp).slashed, 1);
        assertEq(staking.stats(qp).deliveredInTime, 1);
    }

    function test_releaseAndForfeit_neverExceedWhatIsLocked() public {
        vm.startPrank(fakeMarket);
        staking.placeHold(qp, 30e18, 1e16);
        vm.expectRevert(abi.encodeWithSelector(IStaking.HoldExceedsLock.selector, 30e18 + 1, 30e18));
        staking.freeHold(qp, 30e18 + 1, 1e16);
        vm.expectRevert(abi.encodeWithSelector(IStaking.HoldExceedsLock.selector, 30e18 + 1, 30e18));
        staking.forfeitHold(qp, bytes32("job"), 30e18 + 1, requester);
        vm.stopPrank();
        assertEq(staking.lockedOf(qp), 30e18);
    }

    function test_hold_takesTheShortfallFromUnstakingAndCountsTheJob() public {
        vm.prank(qp);
        staking.unstake(STAKE - 10e18);
        vm.prank(fakeMarket);
        staking.placeHold(qp, 30e18, 1e16);
        (uint256 unstaking,) = staking.unstakingOf(qp);
        assertEq(unstaking, STAKE - 30e18);
        assertEq(staking.lockedOf(qp), 30e18);
        assertEq(staking.stats(qp).jobsWon, 1);
        vm.prank(fakeMarket);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, qp, STAKE - 30e18, STAKE));
        staking.placeHold(qp, STAKE, 1e16);
        vm.prank(fakeMarket);
        vm.expectRevert(IStaking.ZeroAmount.selector);
        staking.placeHold(qp, 0, 1e16);
    }

    // ------------------------------------------------------------------ the quote market's holds

    /// @dev Settling, re-delivering and expiring a settled job: its hold is released exactly once, and another
    /// job's hold is untouched.
    function test_quoteJob_releasesItsHoldExactlyOnce() public {
        (bytes32 a, QuotedJob memory ta) = _open(1, qp, qpKey, 0.5e18);
        (bytes32 b, QuotedJob memory tb) = _open(2, qp, qpKey, 0.7e18);
        assertEq(staking.lockedOf(qp), uint256(ta.stakeLocked) + tb.stakeLocked);
        uint256[] memory out = _zkOutput();
        bytes memory proof = _proof(ta.inputCommitment, out);
        vm.prank(qp);
        qm.deliver(a, ta, out, proof);
        assertEq(staking.lockedOf(qp), tb.stakeLocked);
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, a, JobState.Settled));
        qm.deliver(a, ta, out, proof);
        vm.warp(uint256(tb.due) + 1);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, a, JobState.Settled));
        qm.expire(a, ta);
        assertEq(staking.lockedOf(qp), tb.stakeLocked, "b's hold untouched");
        // forged terms cannot release more (or another provider's) stake
        QuotedJob memory forged = _copy(tb);
        forged.stakeLocked = tb.stakeLocked * 2;
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, b));
        qm.expire(b, forged);
        qm.expire(b, tb);
        assertEq(staking.lockedOf(qp), 0);
        assertEq(staking.claimable(requester), tb.stakeLocked);
        assertEq(staking.stakeOf(qp), STAKE - tb.stakeLocked);
        assertEq(staking.stats(qp).expired, 1);
        assertEq(staking.stats(qp).slashed, 1);
    }

    /// @dev The owner removes the quote market from Staking: jobs it holds stake for still settle and expire.
    function test_quoteJob_finishesAfterTheMarketsRemoval() public {
        (bytes32 a, QuotedJob memory ta) = _open(1, qp, qpKey, 0.5e18);
        (bytes32 b, QuotedJob memory tb) = _open(2, qp2, qp2Key, 0.5e18);
        vm.prank(owner);
        staking.setMarket(address(qm), false);
        uint256[] memory out = _zkOutput();
        vm.prank(qp);
        qm.deliver(a, ta, out, _proof(ta.inputCommitment, out));
        assertEq(staking.lockedOf(qp), 0);
        vm.warp(uint256(tb.due) + 1);
        qm.expire(b, tb);
        assertEq(staking.lockedOf(qp2), 0);
        assertEq(staking.claimable(requester), tb.stakeLocked);
    }

    function _copy(QuotedJob memory t) internal pure returns (QuotedJob memory) {
        return abi.decode(abi.encode(t), (QuotedJob));
    }

    /// @dev Every hold entry refuses `who`, and nothing changes.
    function _expectNoHoldEffect(address who) internal {
        uint256 locked = staking.lockedOf(qp);
        uint256 stake_ = staking.stakeOf(qp);
        vm.startPrank(who);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, who));
        staking.freeHold(qp, 1, 1e16);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, who));
        staking.forfeitHold(qp, bytes32("job"), 1, who);
        vm.stopPrank();
        assertEq(staking.lockedOf(qp), locked);
        assertEq(staking.stakeOf(qp), stake_);
        assertEq(staking.claimable(who), 0);
    }
}
