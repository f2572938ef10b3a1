// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TenderFixture} from "./utils/TenderFixture.sol";
import {FeeOnTransferToken} from "./mocks/FeeOnTransferToken.sol";
import {Staking} from "../src/Staking.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";

contract StakingTest is TenderFixture {
    address internal market = makeAddr("market");
    bytes32 internal constant JOB = keccak256("job");

    function setUp() public {
        _deployCore();
        vm.prank(owner);
        staking.setMarket(market, true);
        _activate(staking, market);
    }

    function _fingerprint(address who) internal view returns (bytes32) {
        (uint256 unstaking, uint64 readyAt) = staking.unstakingOf(who);
        return keccak256(
            abi.encode(
                staking.stakeOf(who),
                staking.lockedOf(who),
                unstaking,
                readyAt,
                staking.lockedFor(who, JOB),
                staking.stats(who),
                token.balanceOf(who),
                token.balanceOf(address(staking))
            )
        );
    }

    // ------------------------------------------------------------------ constructor

    function test_constructor_revertsOnZeroToken() public {
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAddress.selector));
        new Staking(IERC20(address(0)), owner, 1, 1e15);
    }

    function test_constructor_revertsOnLongDelay() public {
        vm.expectRevert(abi.encodeWithSelector(IStaking.UnstakingDelayTooLong.selector, 30 days + 1, 30 days));
        new Staking(token, owner, 30 days + 1, 1e15);
    }

    // ------------------------------------------------------------------ stake

    function test_stake_creditsCaller() public {
        vm.expectEmit(address(staking));
        emit IStaking.Staked(provider, provider, 5e18);
        vm.prank(provider);
        staking.stake(5e18);
        assertEq(staking.stakeOf(provider), STAKE + 5e18);
        assertEq(staking.availableOf(provider), STAKE + 5e18);
        assertEq(token.balanceOf(address(staking)), 3 * STAKE + 5e18);
    }

    function test_stake_revertsOnZero() public {
        bytes32 before = _fingerprint(provider);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAmount.selector));
        staking.stake(0);
        assertEq(_fingerprint(provider), before);
    }

    function test_stake_revertsOnFeeOnTransferToken() public {
        FeeOnTransferToken fot = new FeeOnTransferToken();
        Staking s = new Staking(fot, owner, 1, 1e15);
        fot.mint(provider, 10e18);
        vm.startPrank(provider);
        fot.approve(address(s), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IStaking.FeeOnTransferToken.selector, 1e18, 99e16));
        s.stake(1e18);
        vm.stopPrank();
        assertEq(s.stakeOf(provider), 0);
    }

    function test_stakeFor_creditsProvider() public {
        vm.prank(stranger);
        token.approve(address(staking), 1e18);
        vm.expectEmit(address(staking));
        emit IStaking.Staked(provider, stranger, 1e18);
        vm.prank(stranger);
        staking.stakeFor(provider, 1e18);
        assertEq(staking.stakeOf(provider), STAKE + 1e18);
        assertEq(staking.stakeOf(stranger), 0);
    }

    function test_stakeFor_revertsOnZeroProvider() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAddress.selector));
        staking.stakeFor(address(0), 1);
    }

    function test_stake_revertsAbove96Bits() public {
        uint256 big = uint256(type(uint96).max);
        token.mint(provider, big);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.AmountTooLarge.selector, big + STAKE));
        staking.stake(big);
    }

    // ------------------------------------------------------------------ unstake / redeem

    function test_unstake_startsUnstaking() public {
        vm.expectEmit(address(staking));
        emit IStaking.Unstaked(provider, 40e18, 40e18, uint64(block.timestamp + UNSTAKING));
        vm.prank(provider);
        staking.unstake(40e18);
        (uint256 amount, uint64 readyAt) = staking.unstakingOf(provider);
        assertEq(amount, 40e18);
        assertEq(readyAt, block.timestamp + UNSTAKING);
        assertEq(staking.availableOf(provider), STAKE - 40e18);
        assertEq(staking.stakeOf(provider), STAKE);
    }

    function test_unstake_revertsOnZero() public {
        bytes32 before = _fingerprint(provider);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAmount.selector));
        staking.unstake(0);
        assertEq(_fingerprint(provider), before);
    }

    function test_unstake_revertsOnLockedStake() public {
        vm.prank(market);
        staking.lock(provider, JOB, 60e18, 1e16);
        bytes32 before = _fingerprint(provider);
        vm.prank(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider, 40e18, 40e18 + 1)
        );
        staking.unstake(40e18 + 1);
        assertEq(_fingerprint(provider), before);
    }

    function test_redeem_afterDelay() public {
        vm.prank(provider);
        staking.unstake(40e18);
        vm.warp(block.timestamp + UNSTAKING);
        uint256 before = token.balanceOf(provider);
        vm.expectEmit(address(staking));
        emit IStaking.Redeemed(provider, 40e18);
        vm.prank(provider);
        uint256 amount = staking.redeem();
        assertEq(amount, 40e18);
        assertEq(token.balanceOf(provider), before + 40e18);
        assertEq(staking.stakeOf(provider), STAKE - 40e18);
        (uint256 left,) = staking.unstakingOf(provider);
        assertEq(left, 0);
    }

    function test_redeem_revertsBeforeDelay() public {
        vm.prank(provider);
        staking.unstake(40e18);
        uint64 readyAt = uint64(block.timestamp + UNSTAKING);
        vm.warp(readyAt - 1);
        bytes32 before = _fingerprint(provider);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.UnstakingNotReady.selector, readyAt, readyAt - 1));
        staking.redeem();
        assertEq(_fingerprint(provider), before);
    }

    function test_redeem_revertsWithNothingUnstaking() public {
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NothingToRedeem.selector, provider));
        staking.redeem();
    }

    function test_unstake_resetsClock() public {
        vm.prank(provider);
        staking.unstake(10e18);
        vm.warp(block.timestamp + UNSTAKING - 1);
        vm.prank(provider);
        staking.unstake(10e18);
        (uint256 amount, uint64 readyAt) = staking.unstakingOf(provider);
        assertEq(amount, 20e18);
        assertEq(readyAt, block.timestamp + UNSTAKING);
    }

    // ------------------------------------------------------------------ operator / solvers

    function test_registerOperator_storesRecord() public {
        bytes32[] memory models = new bytes32[](2);
        models[0] = modelId;
        models[1] = auditedModelId;
        vm.expectEmit(address(staking));
        emit IStaking.OperatorRegistered(provider, "https://p.example", "eu", keccak256("h100"), models);
        vm.prank(provider);
        staking.registerOperator("https://p.example", "eu", keccak256("h100"), models);
        IStaking.Operator memory op = staking.operator(provider);
        assertEq(op.endpoint, "https://p.example");
        assertEq(op.region, bytes2("eu"));
        assertEq(op.hardwareClass, keccak256("h100"));
        assertEq(op.models.length, 2);
        assertTrue(op.registered);
        assertFalse(staking.operator(stranger).registered);
    }

    function test_setSolver_authorisesAndRevokes() public {
        assertTrue(staking.isAuthorized(provider, provider));
        assertTrue(staking.isAuthorized(provider, solver));
        assertFalse(staking.isAuthorized(provider, stranger));
        vm.expectEmit(address(staking));
        emit IStaking.SolverSet(provider, solver, false);
        vm.prank(provider);
        staking.setSolver(solver, false);
        assertFalse(staking.isAuthorized(provider, solver));
    }

    function test_setSolver_revertsOnZero() public {
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAddress.selector));
        staking.setSolver(address(0), true);
    }

    // ------------------------------------------------------------------ owner

    function test_setMarket_onlyOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        staking.setMarket(stranger, true);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAddress.selector));
        staking.setMarket(address(0), true);
        vm.prank(owner);
        staking.setMarket(market, false);
        assertFalse(staking.isMarket(market));
    }

    function test_setUnstakingDelay_boundsAndOwner() public {
        vm.prank(owner);
        staking.setUnstakingDelay(2 days);
        assertEq(staking.unstakingDelay(), 2 days);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IStaking.UnstakingDelayTooLong.selector, 31 days, 30 days));
        staking.setUnstakingDelay(31 days);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        staking.setUnstakingDelay(1);
    }

    // ------------------------------------------------------------------ lock / unlock / slash

    function test_lock_locksAndCounts() public {
        vm.expectEmit(address(staking));
        emit IStaking.StakeLocked(provider, JOB, market, 30e18);
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        assertEq(staking.lockedOf(provider), 30e18);
        assertEq(staking.lockedFor(provider, JOB), 30e18);
        assertEq(staking.availableOf(provider), STAKE - 30e18);
        assertEq(staking.stats(provider).jobsWon, 1);
    }

    function test_lock_revertsForNonMarket() public {
        bytes32 before = _fingerprint(provider);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.lock(provider, JOB, 1, 1e16);
        assertEq(_fingerprint(provider), before);
    }

    function test_lock_revertsOnZero() public {
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAmount.selector));
        staking.lock(provider, JOB, 0, 1e16);
    }

    function test_lock_revertsTwice() public {
        vm.prank(market);
        staking.lock(provider, JOB, 1e18, 1e16);
        bytes32 before = _fingerprint(provider);
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.AlreadyLocked.selector, provider, JOB));
        staking.lock(provider, JOB, 1e18, 1e16);
        assertEq(_fingerprint(provider), before);
    }

    function test_lock_revertsAboveAvailablePlusUnstaking() public {
        vm.prank(provider);
        staking.unstake(50e18);
        bytes32 before = _fingerprint(provider);
        vm.prank(market);
        vm.expectRevert(
            abi.encodeWithSelector(IStaking.InsufficientStake.selector, provider, STAKE, STAKE + 1)
        );
        staking.lock(provider, JOB, STAKE + 1, 1e16);
        assertEq(_fingerprint(provider), before);
    }

    function test_lock_takesTheShortfallFromUnstaking() public {
        vm.prank(provider);
        staking.unstake(50e18);
        vm.expectEmit(address(staking));
        emit IStaking.UnstakingReclaimed(provider, 10e18);
        vm.prank(market);
        staking.lock(provider, JOB, 60e18, 1e16);
        (uint256 unstaking,) = staking.unstakingOf(provider);
        assertEq(unstaking, 40e18);
        assertEq(staking.lockedOf(provider), 60e18);
        assertEq(staking.availableOf(provider), 0);
        assertEq(staking.stakeOf(provider), STAKE);
    }

    function test_lock_countsOnlyJobsThatPaidTheMinimumFee() public {
        vm.prank(market);
        staking.lock(provider, JOB, 1e18, 1e15 - 1);
        vm.prank(market);
        staking.unlock(provider, JOB, 1e15 - 1);
        assertEq(staking.stats(provider).jobsWon, 0);
        assertEq(staking.stats(provider).deliveredInTime, 0);
        vm.prank(market);
        staking.lock(provider, JOB, 1e18, 1e15);
        vm.prank(market);
        staking.unlock(provider, JOB, 1e15);
        assertEq(staking.stats(provider).jobsWon, 1);
        assertEq(staking.stats(provider).deliveredInTime, 1);
    }

    function test_unlock_releases() public {
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        vm.expectEmit(address(staking));
        emit IStaking.StakeUnlocked(provider, JOB, 30e18);
        vm.prank(market);
        assertEq(staking.unlock(provider, JOB, 1e16), 30e18);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.availableOf(provider), STAKE);
        assertEq(staking.stats(provider).deliveredInTime, 1);
    }

    function test_unlock_revertsWhenNotLocked() public {
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotLocked.selector, provider, JOB));
        staking.unlock(provider, JOB, 1e16);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.unlock(provider, JOB, 1e16);
    }

    function test_unlock_byTheLockingMarketAfterItsRemoval() public {
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        vm.prank(owner);
        staking.setMarket(market, false);
        // a removed market can no longer lock, but finishes what it locked
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, market));
        staking.lock(provider, keccak256("other"), 1, 1e16);
        vm.prank(market);
        assertEq(staking.unlock(provider, JOB, 1e16), 30e18);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.lockedFor(provider, JOB), 0);
    }

    function test_unlock_byAnotherAuthorisedMarketOnly() public {
        address other = makeAddr("other-market");
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        bytes32 before = _fingerprint(provider);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.unlock(provider, JOB, 1e16);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, other));
        staking.unlock(provider, JOB, 1e16);
        assertEq(_fingerprint(provider), before);
        vm.prank(owner);
        staking.setMarket(other, true);
        _activate(staking, other);
        vm.prank(other);
        assertEq(staking.unlock(provider, JOB, 1e16), 30e18);
        assertEq(staking.lockedOf(provider), 0);
    }

    function test_slash_byTheLockingMarketAfterItsRemoval() public {
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        vm.prank(owner);
        staking.setMarket(market, false);
        vm.prank(market);
        staking.recordExpiry(provider, JOB);
        vm.prank(market);
        staking.slash(provider, JOB, 10e18, requester);
        vm.prank(market);
        staking.slash(provider, JOB, 20e18, challenger);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.claimable(requester), 10e18);
        assertEq(staking.claimable(challenger), 20e18);
        assertEq(staking.stats(provider).slashed, 1);
        assertEq(staking.stats(provider).expired, 1);
        // a stranger still cannot
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.recordExpiry(provider, JOB);
    }

    function test_slash_paysRecipient() public {
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, JOB, requester, 10e18);
        vm.prank(market);
        staking.slash(provider, JOB, 10e18, requester);
        // credited, not transferred
        assertEq(token.balanceOf(requester), FUNDS);
        assertEq(staking.claimable(requester), 10e18);
        vm.expectEmit(address(staking));
        emit IStaking.Claimed(requester, 10e18);
        vm.prank(requester);
        assertEq(staking.claim(), 10e18);
        assertEq(token.balanceOf(requester), FUNDS + 10e18);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NothingToClaim.selector, requester));
        staking.claim();
        assertEq(staking.stakeOf(provider), STAKE - 10e18);
        assertEq(staking.lockedFor(provider, JOB), 20e18);
        assertEq(staking.lockedOf(provider), 20e18);
        // a second slash of the same lock counts once
        vm.prank(market);
        staking.slash(provider, JOB, 20e18, challenger);
        assertEq(staking.stats(provider).slashed, 1);
        assertEq(staking.lockedOf(provider), 0);
    }

    function test_slash_revertsAboveLock() public {
        vm.prank(market);
        staking.lock(provider, JOB, 30e18, 1e16);
        bytes32 before = _fingerprint(provider);
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.SlashExceedsLock.selector, 30e18 + 1, 30e18));
        staking.slash(provider, JOB, 30e18 + 1, requester);
        assertEq(_fingerprint(provider), before);
    }

    function test_slash_revertsWithoutLock() public {
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotLocked.selector, provider, JOB));
        staking.slash(provider, JOB, 1, requester);
        vm.prank(market);
        staking.lock(provider, JOB, 1, 1e16);
        vm.prank(market);
        vm.expectRevert(abi.encodeWithSelector(IStaking.ZeroAddress.selector));
        staking.slash(provider, JOB, 1, address(0));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.slash(provider, JOB, 1, requester);
    }

    function test_recordExpiry_counts() public {
        vm.expectEmit(address(staking));
        emit IStaking.ExpiryRecorded(provider, JOB);
        vm.prank(market);
        staking.recordExpiry(provider, JOB);
        assertEq(staking.stats(provider).expired, 1);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        staking.recordExpiry(provider, JOB);
    }

    function test_views_reportWiring() public view {
        assertEq(staking.token(), address(token));
        assertEq(staking.unstakingDelay(), UNSTAKING);
        assertTrue(staking.isMarket(market));
    }

    // ------------------------------------------------------------------ fuzz

    /// @dev stake >= locked + unstaking through any lock / unstake / slash sequence.
    function testFuzz_availableNeverNegative(uint96 lockAmt, uint96 unstakeAmt, uint96 slashAmt) public {
        lockAmt = uint96(bound(lockAmt, 1, STAKE));
        vm.prank(market);
        staking.lock(provider, JOB, lockAmt, 1e16);
        unstakeAmt = uint96(bound(unstakeAmt, 0, STAKE - lockAmt));
        if (unstakeAmt > 0) {
            vm.prank(provider);
            staking.unstake(unstakeAmt);
        }
        slashAmt = uint96(bound(slashAmt, 0, lockAmt));
        vm.prank(market);
        staking.slash(provider, JOB, slashAmt, requester);
        (uint256 unstaking,) = staking.unstakingOf(provider);
        assertGe(staking.stakeOf(provider), staking.lockedOf(provider) + unstaking);
        assertEq(staking.availableOf(provider), STAKE - lockAmt - unstakeAmt);
        vm.warp(block.timestamp + UNSTAKING);
        if (unstakeAmt > 0) {
            vm.prank(provider);
            staking.redeem();
        }
        assertEq(staking.stakeOf(provider), STAKE - slashAmt - unstakeAmt);
    }
}
