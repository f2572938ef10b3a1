// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {BlocklistToken} from "../mocks/BlocklistToken.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {Bid, Intent, Job, JobState, PROOF_OPTIMISTIC} from "../../src/MarketStructs.sol";

/// @notice A requester or challenger that cannot receive the payment token (the token issuer blocklisted
/// it) cannot block an expiry: the slashed stake goes to the market, which credits the compensation, the
/// reward, the bond and the escrow (`owed`), so the provider's lock is always cleared and the escrow never
/// stuck. The blocked account's `withdraw` is refused (by the token) and changes nothing; once unblocked
/// it is paid exactly what it was credited, once.
contract BlocklistTest is AdversarialBase {
    using IntentBuilder for Intent;

    BlocklistToken internal blt;
    World internal w;

    function setUp() public {
        _deployCore();
        blt = new BlocklistToken();
        w = _world(IERC20(address(blt)), blt.mint);
    }

    // ------------------------------------------------------------------ delivery expiry

    function test_blockedRequester_deliveryExpiry_creditsEscrowAndCompensation() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent());
        Job memory j = w.dutch.job(jobId);
        uint256 escrow = _escrow(w.dutch, 1e18);
        blt.setBlocked(requester, true);
        vm.warp(w.dutch.providerDeadline(jobId) + 1);

        uint256 reqBefore = blt.balanceOf(requester);
        uint256 marketBefore = blt.balanceOf(address(w.dutch));
        uint256 stakeBefore = w.staking.stakeOf(provider);
        vm.expectEmit(address(w.dutch));
        emit IMarketEvents.Expired(jobId, provider, j.stakeLocked);
        vm.expectEmit(address(w.staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, j.stakeLocked);
        vm.expectEmit(address(w.dutch));
        emit IMarketEvents.Refunded(jobId, requester, escrow);
        vm.prank(stranger);
        w.dutch.expire(jobId);

        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Expired));
        _assertStakeSlashed(jobId, stakeBefore, j.stakeLocked);
        assertEq(w.staking.stats(provider).expired, 1);
        assertEq(blt.balanceOf(requester), reqBefore, "a token was pushed");
        assertEq(w.dutch.owed(requester), escrow, "escrow credited");
        assertEq(w.staking.claimable(requester), j.stakeLocked, "compensation credited in Staking");
        assertEq(blt.balanceOf(address(w.dutch)), marketBefore);

        _expectWithdrawRefused(jobId, requester);
        _unblockAndWithdraw(requester, escrow);
        _claim(requester, j.stakeLocked);
        assertEq(blt.balanceOf(requester), reqBefore + escrow + j.stakeLocked);
        assertEq(blt.balanceOf(address(w.dutch)), 0);
    }

    /// @dev An expiry that fails over to the runner-up also compensates a blocked requester by credit; the
    /// escrow stays for the runner-up, whose settlement credits the rest.
    function test_blockedRequester_deliveryExpiry_failsOverAndCredits() public {
        Intent memory intent = IntentBuilder.init(requester, modelId).withFailover(true);
        vm.prank(requester);
        bytes32 jobId = w.reverse.post(intent);
        _bidOn(w.reverse, jobId, provider2, Bid(provider2, 5e17, 60));
        _bidOn(w.reverse, jobId, provider, Bid(provider, 4e17, 60));
        vm.warp(_terms(jobId).auctionEnd);
        _awardOn(w.reverse, jobId);
        uint256 locked = w.reverse.job(jobId).stakeLocked;
        uint256 escrow = _escrow(w.reverse, 1e18);
        uint256 stakeBefore = w.staking.stakeOf(provider);
        uint256 reqBefore = blt.balanceOf(requester);
        uint256 marketBefore = blt.balanceOf(address(w.reverse));
        blt.setBlocked(requester, true);
        vm.warp(w.reverse.providerDeadline(jobId) + 1);

        vm.expectEmit(address(w.reverse));
        emit IMarketEvents.FailedOver(jobId, provider, provider2, 5e17);
        vm.prank(stranger);
        w.reverse.expire(jobId);

        Job memory j = w.reverse.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.Awarded));
        assertEq(j.provider, provider2);
        assertEq(w.staking.stakeOf(provider), stakeBefore - locked);
        assertEq(w.staking.lockedOf(provider), 0);
        assertEq(w.staking.lockedFor(provider, jobId), 0);
        assertEq(w.staking.lockedFor(provider2, jobId), j.stakeLocked);
        assertEq(w.staking.claimable(requester), locked, "compensated");
        assertEq(w.reverse.owed(requester), 0, "escrow kept for the runner-up");
        assertEq(blt.balanceOf(requester), reqBefore);
        assertEq(blt.balanceOf(address(w.reverse)), marketBefore);

        uint256[] memory out = _output();
        vm.prank(provider2);
        w.reverse.deliver(jobId, out, _proof(intent.inputCommitment, out));
        uint256 back = escrow - 5e17 - 5e17 / 100;
        assertEq(w.reverse.owed(requester), back);
        assertEq(w.reverse.owed(provider2), 5e17);
        vm.prank(provider2);
        w.reverse.withdraw();
        _unblockAndWithdraw(requester, back);
        _claim(requester, locked);
        assertEq(blt.balanceOf(address(w.reverse)), w.reverse.feesOwed());
    }

    function test_expire_rejectedBeforeDeadlineWithBlockedRequester_noStateChange() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent());
        blt.setBlocked(requester, true);
        uint256 due = w.dutch.providerDeadline(jobId);
        vm.warp(due);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, due));
        w.dutch.expire(jobId);
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    // ------------------------------------------------------------------ proof expiry

    /// @dev An unproven audit (no challenger): the whole lock is credited to the blocked requester.
    function test_blockedRequester_proofExpiry_creditsEscrowAndWholeLock() public {
        bytes32 jobId =
            _postAndFill(w.dutch, _dutchIntent().withModel(auditedModelId).withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        vm.roll(block.number + 2);
        w.dutch.drawAudit(jobId);
        Job memory j = w.dutch.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.ProofRequired));
        uint256 escrow = _escrow(w.dutch, 1e18);
        blt.setBlocked(requester, true);
        vm.warp(j.disputeEnd + 1);

        uint256 stakeBefore = w.staking.stakeOf(provider);
        uint256 marketBefore = blt.balanceOf(address(w.dutch));
        uint256 reqBefore = blt.balanceOf(requester);
        vm.expectEmit(address(w.dutch));
        emit IMarketEvents.Slashed(jobId, provider, j.stakeLocked, 0, 0);
        vm.expectEmit(address(w.staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, j.stakeLocked);
        vm.prank(stranger);
        w.dutch.expire(jobId);

        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Slashed));
        _assertStakeSlashed(jobId, stakeBefore, j.stakeLocked);
        assertEq(w.dutch.owed(requester), escrow);
        assertEq(w.staking.claimable(requester), j.stakeLocked);
        assertEq(blt.balanceOf(requester), reqBefore);
        assertEq(blt.balanceOf(address(w.dutch)), marketBefore);

        _expectWithdrawRefused(jobId, requester);
        _unblockAndWithdraw(requester, escrow);
        _claim(requester, j.stakeLocked);
        assertEq(blt.balanceOf(address(w.dutch)), 0);
    }

    function test_blockedChallenger_proofExpiry_creditsRewardAndBond() public {
        (bytes32 jobId, Job memory j) = _challenged();
        uint256 reward = uint256(j.stakeLocked) * 2000 / 10_000;
        uint256 toRequester = j.stakeLocked - reward;
        uint256 escrow = _escrow(w.dutch, 1e18);
        blt.setBlocked(challenger, true);
        vm.warp(j.disputeEnd + 1);

        uint256 stakeBefore = w.staking.stakeOf(provider);
        uint256 marketBefore = blt.balanceOf(address(w.dutch));
        uint256 chalBefore = blt.balanceOf(challenger);
        uint256 reqBefore = blt.balanceOf(requester);
        vm.expectEmit(address(w.dutch));
        emit IMarketEvents.Slashed(jobId, provider, toRequester, reward, 1e17);
        vm.expectEmit(address(w.staking));
        emit IStaking.StakeSlashed(provider, jobId, challenger, reward);
        vm.expectEmit(address(w.staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, toRequester);
        vm.prank(stranger);
        w.dutch.expire(jobId);

        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Slashed));
        _assertStakeSlashed(jobId, stakeBefore, j.stakeLocked);
        assertEq(w.dutch.owed(challenger), 1e17, "bond");
        assertEq(w.staking.claimable(challenger), reward, "reward");
        assertEq(w.dutch.owed(requester), escrow, "escrow");
        assertEq(w.staking.claimable(requester), toRequester, "compensation");
        assertEq(blt.balanceOf(challenger), chalBefore);
        assertEq(blt.balanceOf(requester), reqBefore);
        assertEq(blt.balanceOf(address(w.dutch)), marketBefore);

        _expectWithdrawRefused(jobId, challenger);
        // the requester is not blocked: it withdraws and claims its share at once
        vm.prank(requester);
        assertEq(w.dutch.withdraw(), escrow);
        _claim(requester, toRequester);
        assertEq(blt.balanceOf(requester), reqBefore + escrow + toRequester);
        _unblockAndWithdraw(challenger, 1e17);
        _claim(challenger, reward);
        assertEq(blt.balanceOf(challenger), chalBefore + reward + 1e17);
        assertEq(blt.balanceOf(address(w.dutch)), 0);
    }

    function test_blockedRequesterAndChallenger_proofExpiry_creditsBoth() public {
        (bytes32 jobId, Job memory j) = _challenged();
        uint256 reward = uint256(j.stakeLocked) * 2000 / 10_000;
        uint256 toRequester = j.stakeLocked - reward;
        uint256 escrow = _escrow(w.dutch, 1e18);
        blt.setBlocked(requester, true);
        blt.setBlocked(challenger, true);
        vm.warp(j.disputeEnd + 1);

        uint256 stakeBefore = w.staking.stakeOf(provider);
        uint256 marketBefore = blt.balanceOf(address(w.dutch));
        vm.prank(stranger);
        w.dutch.expire(jobId);

        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Slashed));
        _assertStakeSlashed(jobId, stakeBefore, j.stakeLocked);
        assertEq(w.dutch.owed(requester), escrow);
        assertEq(w.dutch.owed(challenger), 1e17);
        assertEq(w.staking.claimable(requester), toRequester);
        assertEq(w.staking.claimable(challenger), reward);
        assertEq(blt.balanceOf(address(w.dutch)), marketBefore);

        _expectWithdrawRefused(jobId, requester);
        _expectWithdrawRefused(jobId, challenger);
        _unblockAndWithdraw(requester, escrow);
        _unblockAndWithdraw(challenger, 1e17);
        _claim(requester, toRequester);
        _claim(challenger, reward);
        assertEq(blt.balanceOf(address(w.dutch)), 0);
    }

    /// @dev A blocked challenger cannot pay a bond from its allowance (the token refuses the transfer),
    /// and the refused challenge changes nothing.
    function test_blockedChallenger_challengeRejected_noStateChange() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        blt.setBlocked(challenger, true);
        bytes32 before = _fingerprint(jobId);
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.Blocked.selector, challenger));
        w.dutch.challenge(jobId);
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev An optimistic Dutch job, delivered without proof and challenged by the fixture challenger.
    function _challenged() internal returns (bytes32 jobId, Job memory j) {
        jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        j = w.dutch.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.Challenged));
    }

    /// @dev `who` claims exactly `amount` of slashed stake from Staking.
    function _claim(address who, uint256 amount) internal {
        uint256 before = blt.balanceOf(who);
        vm.prank(who);
        assertEq(w.staking.claim(), amount);
        assertEq(blt.balanceOf(who), before + amount);
    }

    /// @dev The provider lost exactly the job's lock, and nothing of it stays locked.
    function _assertStakeSlashed(bytes32 jobId, uint256 stakeBefore, uint256 locked) internal view {
        assertEq(w.staking.stakeOf(provider), stakeBefore - locked, "slashed other than the lock");
        assertEq(w.staking.lockedFor(provider, jobId), 0, "job still locked");
        assertEq(w.staking.lockedOf(provider), 0, "stake still locked");
        assertEq(w.staking.stats(provider).slashed, 1);
    }

    /// @dev A blocked account's withdrawal is refused by the token and changes nothing.
    function _expectWithdrawRefused(bytes32 jobId, address who) internal {
        bytes32 before = _fingerprint(jobId);
        vm.prank(who);
        vm.expectRevert(abi.encodeWithSelector(BlocklistToken.Blocked.selector, who));
        w.dutch.withdraw();
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    /// @dev Unblocks `who`, which then withdraws exactly `amount` from the market it is owed by, once.
    function _unblockAndWithdraw(address who, uint256 amount) internal {
        blt.setBlocked(who, false);
        IMarket m = w.dutch.owed(who) != 0 ? IMarket(address(w.dutch)) : IMarket(address(w.reverse));
        uint256 before = blt.balanceOf(who);
        vm.prank(who);
        assertEq(m.withdraw(), amount);
        assertEq(blt.balanceOf(who), before + amount);
        assertEq(m.owed(who), 0);
        vm.prank(who);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, who));
        m.withdraw();
    }

    /// @dev Everything a rejected call must leave unchanged, on the Dutch market and Staking.
    function _fingerprint(bytes32 jobId) internal view returns (bytes32) {
        bytes memory balances = abi.encode(
            blt.balanceOf(address(w.dutch)),
            blt.balanceOf(address(w.staking)),
            blt.balanceOf(requester),
            blt.balanceOf(provider),
            blt.balanceOf(challenger)
        );
        bytes memory stake = abi.encode(
            w.staking.stakeOf(provider),
            w.staking.lockedOf(provider),
            w.staking.lockedFor(provider, jobId),
            w.staking.stats(provider)
        );
        bytes memory owed = abi.encode(
            w.dutch.owed(requester), w.dutch.owed(provider), w.dutch.owed(challenger), w.dutch.feesOwed()
        );
        return keccak256(abi.encode(w.dutch.job(jobId), balances, stake, owed));
    }
}
