// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IMarket, IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {Intent, JobState, PROOF_OPTIMISTIC} from "../../src/MarketStructs.sol";

/// @notice Challenges against honest deliveries. A zk delivery (or an optimistic one handed in with its
/// proof) settles at delivery, so there is nothing left to challenge (IMarket: `deliver`); an honest
/// optimistic delivery that is challenged is proven and the challenger's bond goes to the provider
/// (covered in AdversarialTest.test_challenge_againstHonestDeliveryLosesBond).
contract DisputesTest is AdversarialBase {
    using IntentBuilder for Intent;

    World internal w;

    function setUp() public {
        _deployCore();
        w = _world(IERC20(address(token)), token.mint);
    }

    function test_challenge_cannotBeOpenedAgainstHonestZkDelivery() public {
        Intent memory intent = _dutchIntent();
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, _proof(intent.inputCommitment, out));
        _expectUnchallengeable(jobId);
    }

    function test_challenge_cannotBeOpenedAgainstOptimisticDeliveryWithProof() public {
        Intent memory intent = _dutchIntent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, _proof(intent.inputCommitment, out));
        _expectUnchallengeable(jobId);
    }

    function test_challenge_cannotBeOpenedTwiceOrAfterProof() public {
        Intent memory intent = _dutchIntent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _postAndFill(w.dutch, intent);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.dutch.deliver(jobId, out, "");
        vm.prank(challenger);
        w.dutch.challenge(jobId);
        // a second challenger cannot pile on
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Challenged)
        );
        w.dutch.challenge(jobId);
        vm.prank(provider);
        w.dutch.prove(jobId, _proof(intent.inputCommitment, out));
        _expectUnchallengeable(jobId);
    }

    function _expectUnchallengeable(bytes32 jobId) internal {
        assertEq(uint256(w.dutch.job(jobId).state), uint256(JobState.Settled));
        uint256 before = token.balanceOf(challenger);
        uint256 stakeBefore = w.staking.stakeOf(provider);
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Settled));
        w.dutch.challenge(jobId);
        // and nothing can slash the provider afterwards
        vm.warp(block.timestamp + 1 days);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Settled));
        w.dutch.expire(jobId);
        assertEq(token.balanceOf(challenger), before, "challenger charged");
        assertEq(w.staking.stakeOf(provider), stakeBefore, "provider slashed");
        assertEq(w.staking.lockedFor(provider, jobId), 0);
    }
}
