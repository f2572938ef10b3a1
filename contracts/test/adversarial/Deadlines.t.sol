// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {IDutchAuctionMarket} from "../../src/interfaces/IDutchAuctionMarket.sol";
import {AuctionTerms, Bid, Intent, Job, JobTerms, PROOF_OPTIMISTIC} from "../../src/MarketStructs.sol";

/// @notice Every deadline probed one second before, at, and one second after, each from the same state
/// (snapshots). Where two calls compete for the same second (bid vs award, deliver vs expire, challenge
/// vs finalize, prove vs expire, award vs refund) exactly one of them is possible at every second: no
/// gap where a job is stuck and no overlap where both sides can act.
contract DeadlinesTest is AdversarialBase {
    using IntentBuilder for Intent;

    World internal w;
    address internal keeper = makeAddr("keeper");

    struct Outcome {
        bool ok;
        bytes ret;
    }

    function setUp() public {
        _deployCore();
        w = _world(IERC20(address(token)), token.mint);
    }

    // ------------------------------------------------------------------ auction windows

    function test_boundary_bidWindowEnd_bidThenAward() public {
        (bytes32 jobId,) = _reverseWithBid();
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        uint256 end = t.auctionEnd;
        bytes memory bidCall = abi.encodeCall(IReverseAuctionMarket.bid, (jobId, t, Bid(provider2, 4e17, 60)));
        bytes memory awardCall = abi.encodeCall(IReverseAuctionMarket.award, (jobId, t, jt));
        bytes memory closed = abi.encodeWithSelector(IMarketEvents.AuctionClosed.selector, jobId, end);
        bytes memory notEnded = abi.encodeWithSelector(IMarketEvents.AuctionNotEnded.selector, jobId, end);

        _expect(_at(end - 1, provider2, address(w.reverse), bidCall), true, "");
        _expect(_at(end, provider2, address(w.reverse), bidCall), false, closed);
        _expect(_at(end + 1, provider2, address(w.reverse), bidCall), false, closed);

        _expect(_at(end - 1, keeper, address(w.reverse), awardCall), false, notEnded);
        _expect(_at(end, keeper, address(w.reverse), awardCall), true, "");
        _expect(_at(end + 1, keeper, address(w.reverse), awardCall), true, "");
    }

    function test_boundary_fillWindowEnd_fillThenRefund() public {
        vm.prank(requester);
        bytes32 jobId = w.dutch.post(_dutchIntent());
        uint256 end = w.dutch.job(jobId).auctionEnd;
        bytes memory fillCall = abi.encodeCall(IDutchAuctionMarket.fill, (jobId, provider, 60));
        bytes memory refundCall = abi.encodeCall(IDutchAuctionMarket.refund, (jobId));

        _expect(_at(end - 1, provider, address(w.dutch), fillCall), true, "");
        _expect(
            _at(end, provider, address(w.dutch), fillCall),
            false,
            abi.encodeWithSelector(IMarketEvents.AuctionClosed.selector, jobId, end)
        );
        _expect(
            _at(end - 1, keeper, address(w.dutch), refundCall),
            false,
            abi.encodeWithSelector(IMarketEvents.AuctionNotEnded.selector, jobId, end)
        );
        _expect(_at(end, keeper, address(w.dutch), refundCall), true, "");
        _expect(_at(end + 1, keeper, address(w.dutch), refundCall), true, "");
    }

    function test_boundary_jobDeadline_awardThenRefund() public {
        (bytes32 jobId,) = _reverseWithBid();
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        uint256 deadline = t.deadline;
        bytes memory awardCall = abi.encodeCall(IReverseAuctionMarket.award, (jobId, t, jt));
        bytes memory refundCall = abi.encodeCall(IReverseAuctionMarket.refund, (jobId, t, jt));
        bytes memory passed = abi.encodeWithSelector(IMarketEvents.DeadlinePassed.selector, jobId, deadline);

        _expect(_at(deadline - 1, keeper, address(w.reverse), awardCall), true, "");
        _expect(_at(deadline, keeper, address(w.reverse), awardCall), false, passed);
        _expect(_at(deadline + 1, keeper, address(w.reverse), awardCall), false, passed);

        // with bids, a refund waits until no award is possible any more
        _expect(
            _at(deadline - 1, keeper, address(w.reverse), refundCall),
            false,
            abi.encodeWithSelector(IMarketEvents.NotRefundable.selector, jobId)
        );
        _expect(_at(deadline, keeper, address(w.reverse), refundCall), true, "");
        _expect(_at(deadline + 1, keeper, address(w.reverse), refundCall), true, "");
    }

    function test_boundary_intentExpiry_post() public {
        Intent memory intent = _dutchIntent();
        uint256 expiry = intent.expiry;
        // the window must still fit before the deadline at the probed times
        intent.deadline = uint64(expiry + 600);
        bytes memory postCall = abi.encodeCall(IMarket.post, (intent));

        _expect(_at(expiry - 1, requester, address(w.dutch), postCall), true, "");
        _expect(
            _at(expiry, requester, address(w.dutch), postCall),
            false,
            abi.encodeWithSelector(IMarketEvents.IntentExpired.selector, uint64(expiry), expiry)
        );
        _expect(
            _at(expiry + 1, requester, address(w.dutch), postCall),
            false,
            abi.encodeWithSelector(IMarketEvents.IntentExpired.selector, uint64(expiry), expiry + 1)
        );
    }

    // ------------------------------------------------------------------ delivery

    function test_boundary_deliveryDeadline_deliverThenExpire() public {
        Intent memory intent = _dutchIntent();
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256 due = w.dutch.providerDeadline(jobId);
        uint256[] memory out = _output();
        bytes memory deliverCall =
            abi.encodeCall(IMarket.deliver, (jobId, out, _proof(intent.inputCommitment, out)));
        bytes memory expireCall = abi.encodeCall(IMarket.expire, (jobId));
        bytes memory notExpired = abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, due);

        _expect(_at(due - 1, provider, address(w.dutch), deliverCall), true, "");
        _expect(_at(due, provider, address(w.dutch), deliverCall), true, "");
        _expect(
            _at(due + 1, provider, address(w.dutch), deliverCall),
            false,
            abi.encodeWithSelector(IMarketEvents.DeliveryTooLate.selector, jobId, due, due + 1)
        );

        _expect(_at(due - 1, keeper, address(w.dutch), expireCall), false, notExpired);
        _expect(_at(due, keeper, address(w.dutch), expireCall), false, notExpired);
        _expect(_at(due + 1, keeper, address(w.dutch), expireCall), true, "");
    }

    // ------------------------------------------------------------------ disputes

    function test_boundary_challengeWindow_challengeThenFinalize() public {
        bytes32 jobId = _postAndFill(w.dutch, _dutchIntent().withProofMode(PROOF_OPTIMISTIC));
        vm.prank(provider);
        w.dutch.deliver(jobId, _output(), "");
        uint40 end = w.dutch.job(jobId).disputeEnd;
        bytes memory challengeCall = abi.encodeCall(IMarket.challenge, (jobId));
        bytes memory finalizeCall = abi.encodeCall(IMarket.finalize, (jobId));
        bytes memory closed = abi.encodeWithSelector(IMarketEvents.ChallengeWindowClosed.selector, jobId, end);

        _expect(_at(end - 1, challenger, address(w.dutch), challengeCall), true, "");
        _expect(_at(end, challenger, address(w.dutch), challengeCall), false, closed);
        _expect(_at(end + 1, challenger, address(w.dutch), challengeCall), false, closed);

        _expect(
            _at(end - 1, keeper, address(w.dutch), finalizeCall),
            false,
            abi.encodeWithSelector(IMarketEvents.ChallengeWindowOpen.selector, jobId, end)
        );
        _expect(_at(end, keeper, address(w.dutch), finalizeCall), true, "");
        _expect(_at(end + 1, keeper, address(w.dutch), finalizeCall), true, "");
    }

    function test_boundary_proofDeadline_proveThenExpire() public {
        Intent memory intent = _dutchIntent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, "");
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        uint40 end = w.dutch.job(jobId).disputeEnd;
        bytes memory proveCall = abi.encodeCall(IMarket.prove, (jobId, _proof(intent.inputCommitment, out)));
        bytes memory expireCall = abi.encodeCall(IMarket.expire, (jobId));
        bytes memory notExpired =
            abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, uint256(end));

        _expect(_at(end - 1, provider, address(w.dutch), proveCall), true, "");
        _expect(_at(end, provider, address(w.dutch), proveCall), true, "");
        _expect(
            _at(end + 1, provider, address(w.dutch), proveCall),
            false,
            abi.encodeWithSelector(IMarketEvents.ProofDeadlinePassed.selector, jobId, end)
        );

        _expect(_at(end - 1, keeper, address(w.dutch), expireCall), false, notExpired);
        _expect(_at(end, keeper, address(w.dutch), expireCall), false, notExpired);
        _expect(_at(end + 1, keeper, address(w.dutch), expireCall), true, "");
    }

    // ------------------------------------------------------------------ staking

    function test_boundary_unstakingDelay_redeem() public {
        vm.prank(provider);
        w.staking.unstake(1e18);
        (, uint64 readyAt) = w.staking.unstakingOf(provider);
        bytes memory redeemCall = abi.encodeCall(IStaking.redeem, ());

        _expect(
            _at(readyAt - 1, provider, address(w.staking), redeemCall),
            false,
            abi.encodeWithSelector(IStaking.UnstakingNotReady.selector, readyAt, uint256(readyAt) - 1)
        );
        _expect(_at(readyAt, provider, address(w.staking), redeemCall), true, "");
        _expect(_at(readyAt + 1, provider, address(w.staking), redeemCall), true, "");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev A reverse job (fixture defaults: 60 s window, deadline 600 s out) with one bid from `provider`.
    function _reverseWithBid() internal returns (bytes32 jobId, Intent memory intent) {
        intent = IntentBuilder.init(requester, modelId);
        vm.prank(requester);
        jobId = w.reverse.post(intent);
        _bidOn(w.reverse, jobId, provider, Bid(provider, 5e17, 60));
    }

    /// @dev Runs `data` against `target` as `caller` at time `t` from the current state, then restores it.
    function _at(uint256 t, address caller, address target, bytes memory data)
        internal
        returns (Outcome memory o)
    {
        uint256 snap = vm.snapshotState();
        vm.warp(t);
        vm.prank(caller);
        (o.ok, o.ret) = target.call(data);
        vm.revertToState(snap);
    }

    function _expect(Outcome memory o, bool ok, bytes memory err) internal pure {
        assertEq(o.ok, ok);
        if (!ok) assertEq(o.ret, err);
    }
}
