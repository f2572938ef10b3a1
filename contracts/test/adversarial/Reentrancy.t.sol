// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {HostileToken} from "../mocks/HostileToken.sol";
import {HostileConsumer} from "../mocks/HostileConsumer.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IDutchAuctionMarket} from "../../src/interfaces/IDutchAuctionMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {Intent, Job, JobState, PROOF_OPTIMISTIC} from "../../src/MarketStructs.sol";

/// @notice Re-entry through a token whose transfers call back (every withdrawal of what the market owes,
/// every escrow or bond pulled in, every slash and stake redemption) and through the consumer callback.
/// Settlements and refunds only credit (`owed`), so the token's hook fires when the credit is withdrawn.
/// Every re-entry must be refused and every party credited, and paid, exactly once.
contract ReentrancyTest is AdversarialBase {
    using IntentBuilder for Intent;

    HostileToken internal hostile;
    World internal w;

    function setUp() public {
        _deployCore();
        hostile = new HostileToken();
        w = _world(IERC20(address(hostile)), hostile.mint);
    }

    // ------------------------------------------------------------------ hostile token

    /// @dev Settlement only credits: the hook armed on the provider stays silent until the provider
    /// withdraws, and the re-entry it then tries (a second delivery) is refused.
    function test_hostileToken_payoutReentersDeliver_paysOnce() public {
        Intent memory intent = _dutchIntent();
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        hostile.arm(provider, address(w.dutch), abi.encodeCall(IMarket.deliver, (jobId, out, proof)));
        uint256 providerBefore = hostile.balanceOf(provider);
        uint256 requesterBefore = hostile.balanceOf(requester);

        vm.prank(provider);
        w.dutch.deliver(jobId, out, proof);
        assertFalse(hostile.hookFired(), "settlement pushed tokens");
        uint256 price = w.dutch.job(jobId).price;
        uint256 refund = _escrow(w.dutch, 1e18) - price - price / 100;
        assertEq(w.dutch.owed(provider), price);
        assertEq(w.dutch.owed(requester), refund);

        vm.prank(provider);
        assertEq(w.dutch.withdraw(), price);

        _assertRefused();
        assertEq(hostile.balanceOf(provider), providerBefore + price, "provider paid other than once");
        assertEq(w.dutch.owed(provider), 0);
        vm.prank(requester);
        w.dutch.withdraw();
        assertEq(hostile.balanceOf(requester), requesterBefore + refund);
        assertEq(hostile.balanceOf(address(w.dutch)), w.dutch.feesOwed(), "market kept more than the fee");
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Settled));
    }

    function test_hostileToken_refundReentersRefund_refundsOnce() public {
        vm.prank(requester);
        bytes32 jobId = w.dutch.post(_dutchIntent());
        vm.warp(w.dutch.job(jobId).auctionEnd);
        hostile.arm(requester, address(w.dutch), abi.encodeCall(IDutchAuctionMarket.refund, (jobId)));
        uint256 before = hostile.balanceOf(requester);

        w.dutch.refund(jobId);
        assertFalse(hostile.hookFired(), "refund pushed tokens");
        assertEq(w.dutch.owed(requester), _escrow(w.dutch, 1e18));

        vm.prank(requester);
        w.dutch.withdraw();

        _assertRefused();
        assertEq(hostile.balanceOf(requester), before + _escrow(w.dutch, 1e18), "refunded other than once");
        assertEq(w.dutch.owed(requester), 0);
        assertEq(hostile.balanceOf(address(w.dutch)), 0);
    }

    /// @dev The slash pays the market (which credits the requester), so the hook fires on the transfer
    /// Staking -> market while the market is mid-expire: a second `expire` from there is refused. The
    /// compensation is credited once, then paid once by the requester's `withdraw`, whose transfer fires
    /// the hook again: that re-entry is refused too.
    /// @dev A slash moves no token any more (it is credited in Staking), so a token hook has nothing to ride
    /// on in `expire`; the payouts are the market's `withdraw` and Staking's `claim`, and a hook re-entering
    /// from either transfer is refused while the payout itself completes, once.
    function test_hostileToken_slashReentersExpire_compensatesOnce() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent());
        Job memory j = w.dutch.job(jobId);
        uint256 escrow = _escrow(w.dutch, 1e18);
        vm.warp(w.dutch.providerDeadline(jobId) + 1);
        uint256 before = hostile.balanceOf(requester);
        uint256 marketBefore = hostile.balanceOf(address(w.dutch));
        uint256 stakeBefore = w.staking.stakeOf(provider);

        w.dutch.expire(jobId);

        assertEq(hostile.balanceOf(requester), before, "expiry pushed tokens");
        assertEq(w.dutch.owed(requester), escrow, "credited other than once");
        assertEq(w.staking.claimable(requester), j.stakeLocked, "compensated other than once");
        assertEq(hostile.balanceOf(address(w.dutch)), marketBefore, "the slash moved tokens");
        assertEq(w.staking.stakeOf(provider), stakeBefore - j.stakeLocked, "slashed other than once");
        assertEq(w.staking.lockedOf(provider), 0);
        assertEq(w.staking.stats(provider).slashed, 1);
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Expired));

        // the payouts: the hook fires on the transfer to the requester and tries to expire again / claim again
        hostile.arm(requester, address(w.dutch), abi.encodeCall(IMarket.expire, (jobId)));
        vm.prank(requester);
        assertEq(w.dutch.withdraw(), escrow);
        _assertRefused();
        hostile.arm(requester, address(w.staking), abi.encodeCall(IStaking.claim, ()));
        vm.prank(requester);
        assertEq(w.staking.claim(), j.stakeLocked);
        _assertRefused();

        assertEq(hostile.balanceOf(requester), before + escrow + j.stakeLocked, "paid other than once");
        assertEq(w.dutch.owed(requester), 0);
        assertEq(w.staking.claimable(requester), 0);
        assertEq(hostile.balanceOf(address(w.dutch)), 0);
        assertEq(w.staking.stakeOf(provider), stakeBefore - j.stakeLocked);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, requester));
        w.dutch.withdraw();
    }

    function test_hostileToken_bondPayoutReentersProve_paysOnce() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, "");
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        bytes memory proof = _proof(w.dutch.job(jobId).inputCommitment, out);
        hostile.arm(provider, address(w.dutch), abi.encodeCall(IMarket.prove, (jobId, proof)));
        uint256 before = hostile.balanceOf(provider);

        vm.prank(provider);
        w.dutch.prove(jobId, proof);
        assertFalse(hostile.hookFired(), "prove pushed tokens");
        Job memory j = w.dutch.job(jobId);
        assertEq(w.dutch.owed(provider), j.price + j.challengeBond);

        vm.prank(provider);
        w.dutch.withdraw();

        _assertRefused();
        assertEq(hostile.balanceOf(provider), before + j.price + j.challengeBond, "paid other than once");
        assertEq(w.dutch.owed(provider), 0);
        vm.prank(requester);
        w.dutch.withdraw();
        assertEq(hostile.balanceOf(address(w.dutch)), w.dutch.feesOwed());
    }

    /// @dev The token is itself the requester that is owed, so that the re-entering call comes from the
    /// very account being paid: a second `withdraw` from inside the first is refused, paid once.
    function test_hostileToken_marketWithdrawReentersWithdraw_paysOnce() public {
        uint256 escrow = _escrow(w.dutch, 1e18);
        address self = address(hostile);
        hostile.mint(self, escrow);
        vm.startPrank(self);
        hostile.approve(address(w.dutch), escrow);
        bytes32 jobId = w.dutch.post(_dutchIntent().withRequester(self));
        vm.stopPrank();
        vm.warp(w.dutch.job(jobId).auctionEnd);
        w.dutch.refund(jobId);
        assertEq(w.dutch.owed(self), escrow);
        hostile.arm(self, address(w.dutch), abi.encodeCall(IMarket.withdraw, ()));

        vm.prank(self);
        assertEq(w.dutch.withdraw(), escrow);

        _assertRefused();
        assertEq(hostile.balanceOf(self), escrow, "withdrawn other than once");
        assertEq(w.dutch.owed(self), 0);
        assertEq(hostile.balanceOf(address(w.dutch)), 0);
        vm.prank(self);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, self));
        w.dutch.withdraw();
    }

    /// @dev The hook fires on the escrow pull (the transfer into the market) of a requester whose credit
    /// falls short: its `withdraw` of that credit from inside `post` is refused; the escrow is pulled once,
    /// the credit is untouched and paid out later, once.
    function test_hostileToken_escrowPullReentersWithdraw_refused() public {
        address self = address(hostile);
        uint256 small = _escrow(w.dutch, 5e17);
        uint256 escrow = _escrow(w.dutch, 1e18);
        hostile.mint(self, small + escrow);
        vm.startPrank(self);
        hostile.approve(address(w.dutch), type(uint256).max);
        bytes32 first =
            w.dutch.post(_dutchIntent().withRequester(self).withMaxPrice(5e17).withStartPrice(1e17));
        vm.stopPrank();
        vm.warp(w.dutch.job(first).auctionEnd);
        w.dutch.refund(first);
        assertEq(w.dutch.owed(self), small);
        hostile.arm(address(w.dutch), address(w.dutch), abi.encodeCall(IMarket.withdraw, ()));

        Intent memory intent = _dutchIntent().withRequester(self).withNonce(1);
        vm.prank(self);
        bytes32 jobId = w.dutch.post(intent);

        _assertRefused();
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Open));
        assertEq(hostile.balanceOf(self), 0, "escrow pulled other than once");
        assertEq(w.dutch.owed(self), small, "credit touched");
        assertEq(hostile.balanceOf(address(w.dutch)), small + escrow);
        vm.prank(self);
        assertEq(w.dutch.withdraw(), small);
        assertEq(hostile.balanceOf(self), small);
    }

    function test_hostileToken_redeemReentersRedeem_paysOnce() public {
        // the token itself is the staker, so that the re-entering call comes from the staker
        uint256 amount = 10e18;
        hostile.mint(address(hostile), amount);
        vm.startPrank(address(hostile));
        hostile.approve(address(w.staking), amount);
        w.staking.stake(amount);
        w.staking.unstake(amount);
        vm.stopPrank();
        vm.warp(block.timestamp + UNSTAKING);
        hostile.arm(address(hostile), address(w.staking), abi.encodeCall(IStaking.redeem, ()));

        vm.prank(address(hostile));
        w.staking.redeem();

        _assertRefused();
        assertEq(hostile.balanceOf(address(hostile)), amount, "redeemed other than once");
        assertEq(w.staking.stakeOf(address(hostile)), 0);
    }

    // ------------------------------------------------------------------ hostile consumer

    function test_hostileConsumer_reentersDeliver_paysOnce() public {
        (HostileConsumer consumer, bytes32 jobId, Intent memory intent) = _consumerJob(0);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        consumer.setAttack(abi.encodeCall(IMarket.deliver, (jobId, out, proof)));
        _settleAndCheck(consumer, jobId, _deliverCall(jobId, out, proof));
    }

    function test_hostileConsumer_reentersFinalize_paysOnce() public {
        (HostileConsumer consumer, bytes32 jobId,) = _consumerJob(PROOF_OPTIMISTIC);
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        vm.warp(w.dutch.job(jobId).disputeEnd);
        consumer.setAttack(abi.encodeCall(IMarket.finalize, (jobId)));
        _settleAndCheck(consumer, jobId, abi.encodeCall(IMarket.finalize, (jobId)));
    }

    /// @dev The requester is credited its refund before its callback runs; withdrawing it from inside the
    /// callback is refused (the settlement holds the guard), and it is paid later, once.
    function test_hostileConsumer_withdrawsFromCallback_refused() public {
        (HostileConsumer consumer, bytes32 jobId, Intent memory intent) = _consumerJob(0);
        uint256[] memory out = _output();
        consumer.setAttack(abi.encodeCall(IMarket.withdraw, ()));
        _settleAndCheck(consumer, jobId, _deliverCall(jobId, out, _proof(intent.inputCommitment, out)));
    }

    function test_hostileConsumer_reentersExpireAfterProve_paysOnce() public {
        (HostileConsumer consumer, bytes32 jobId, Intent memory intent) = _consumerJob(PROOF_OPTIMISTIC);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, "");
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        // the requester tries to turn the proven job into an expiry (slash) from its callback
        consumer.setAttack(abi.encodeCall(IMarket.expire, (jobId)));
        _settleAndCheck(
            consumer, jobId, abi.encodeCall(IMarket.prove, (jobId, _proof(intent.inputCommitment, out)))
        );
    }

    // ------------------------------------------------------------------ helpers

    function _assertRefused() internal view {
        assertTrue(hostile.hookFired(), "hook did not fire");
        assertFalse(hostile.hookSucceeded(), "re-entry went through");
        assertEq(
            hostile.hookReturn(),
            abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
    }

    function _consumerJob(uint8 proofMode)
        internal
        returns (HostileConsumer consumer, bytes32 jobId, Intent memory intent)
    {
        consumer = new HostileConsumer();
        hostile.mint(address(consumer), 10e18);
        intent =
            _dutchIntent().withRequester(address(consumer)).withCallbackGas(300_000).withProofMode(proofMode);
        jobId = consumer.post(w.dutch, IERC20(address(hostile)), intent);
        vm.prank(provider);
        w.dutch.fill(jobId, provider, 60);
    }

    function _deliverCall(bytes32 jobId, uint256[] memory out, bytes memory proof)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeCall(IMarket.deliver, (jobId, out, proof));
    }

    /// @dev Runs the settling call as the provider and checks the callback's re-entry was refused, that
    /// everyone was credited exactly once, and that withdrawing pays exactly that, once.
    function _settleAndCheck(HostileConsumer consumer, bytes32 jobId, bytes memory settleCall) internal {
        Job memory before = w.dutch.job(jobId);
        uint256 providerBefore = hostile.balanceOf(provider);
        uint256 consumerBefore = hostile.balanceOf(address(consumer));
        uint256 marketBefore = hostile.balanceOf(address(w.dutch));
        uint256 bond = before.state == JobState.Challenged ? before.challengeBond : 0;

        vm.prank(provider);
        (bool ok,) = address(w.dutch).call{gas: 2_000_000}(settleCall);
        assertTrue(ok, "settlement failed");

        assertTrue(consumer.attacked(), "callback not called");
        assertFalse(consumer.attackSucceeded(), "re-entry went through");
        assertEq(
            consumer.attackError(),
            abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
        uint256 price = before.price;
        uint256 fee = price * before.feeBps / 10_000;
        uint256 escrow = _escrow(w.dutch, before.maxPrice);
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Settled));
        assertEq(w.dutch.owed(provider), price + bond, "provider credited other than once");
        assertEq(w.dutch.owed(address(consumer)), escrow - price - fee, "refund credited other than once");
        // settlement moves no token
        assertEq(hostile.balanceOf(address(w.dutch)), marketBefore, "market");
        assertEq(hostile.balanceOf(address(consumer)), consumerBefore, "consumer");
        assertEq(w.staking.lockedOf(provider), 0);

        vm.prank(provider);
        w.dutch.withdraw();
        vm.prank(address(consumer));
        w.dutch.withdraw();
        assertEq(hostile.balanceOf(provider), providerBefore + price + bond, "provider paid other than once");
        assertEq(hostile.balanceOf(address(consumer)), consumerBefore + escrow - price - fee, "refund");
        // the fee stays, owed to the treasury
        assertEq(hostile.balanceOf(address(w.dutch)), marketBefore - escrow - bond + fee, "market");
    }
}
