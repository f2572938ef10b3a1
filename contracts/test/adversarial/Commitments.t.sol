// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {QuoteMarket} from "../../src/QuoteMarket.sol";
import {IQuoteMarket, QuotedJob} from "../../src/interfaces/IQuoteMarket.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {JobState} from "../../src/MarketStructs.sol";
import {IResultCommitments} from "../../src/interfaces/IResultCommitments.sol";

/// @notice Result commitments: a provider that hands one output off-chain and proves another is penalised;
/// no honest provider can be (a matching delivery, a replay, another job's or market's or chain's commitment,
/// a commitment by a provider the job was not awarded to, a job not yet settled).
contract CommitmentsTest is QuoteFixture {
    bytes32 internal jobId;
    QuotedJob internal t;
    bytes32 internal delivered;

    function setUp() public {
        _deployQuote();
        (jobId, t) = _open(1, qp, qpKey, 0.5e18);
    }

    function _deliver() internal {
        uint256[] memory out = _zkOutput();
        delivered = keccak256(abi.encode(out));
        vm.prank(qp);
        qm.deliver(jobId, t, out, _proof(t.inputCommitment, out));
    }

    function test_slash_whenProvedOutputDiffers() public {
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qpKey);
        _deliver();
        uint256 stakeBefore = staking.stakeOf(qp);
        vm.expectEmit(address(qm));
        emit IResultCommitments.CommitmentSlashed(jobId, qp, promised, delivered, t.stakeLocked);
        vm.prank(stranger);
        qm.slashCommitment(jobId, t, delivered, promised, sig);
        assertEq(staking.claimable(requester), t.stakeLocked);
        assertEq(stakeBefore - staking.stakeOf(qp), t.stakeLocked);
        (JobState st,) = qm.jobState(jobId);
        assertEq(uint256(st), uint256(JobState.Slashed));
    }

    function test_slash_bySolverSignedCommitment() public {
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qSolverKey);
        _deliver();
        qm.slashCommitment(jobId, t, delivered, promised, sig);
        assertEq(staking.claimable(requester), t.stakeLocked);
    }

    function test_noSlash_matchingDelivery() public {
        _deliver();
        bytes memory sig = _signCommitment(qm, jobId, delivered, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IResultCommitments.CommitmentMatches.selector, jobId));
        qm.slashCommitment(jobId, t, delivered, delivered, sig);
        // lying about what was delivered does not help: the word binds the delivered hash
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId));
        qm.slashCommitment(jobId, t, keccak256("not delivered"), delivered, sig);
    }

    function test_noSlash_beforeSettlement() public {
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Awarded));
        qm.slashCommitment(jobId, t, bytes32(0), promised, sig);
    }

    function test_noSlash_replay() public {
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qpKey);
        _deliver();
        qm.slashCommitment(jobId, t, delivered, promised, sig);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Slashed));
        qm.slashCommitment(jobId, t, delivered, promised, sig);
    }

    function test_noSlash_commitmentForAnotherJob() public {
        // qp honestly committed to output X on job 2; X differs from job 1's delivery
        (bytes32 job2,) = _open(2, qp, qpKey, 0.5e18);
        bytes32 promised = keccak256("job 2 output");
        bytes memory sig = _signCommitment(qm, job2, promised, qpKey);
        _deliver();
        vm.expectPartialRevert(IResultCommitments.InvalidCommitmentSigner.selector);
        qm.slashCommitment(jobId, t, delivered, promised, sig);
    }

    function test_noSlash_commitmentOnAnotherMarketOrChain() public {
        QuoteMarket other = new QuoteMarket(token, registry, staking, treasury, owner, _defaultParams());
        bytes32 promised = keccak256("another output");
        bytes memory onOther = _signCommitment(other, jobId, promised, qpKey);
        uint256 home = block.chainid;
        vm.chainId(home + 1);
        bytes memory onOtherChain = _signCommitment(qm, jobId, promised, qpKey);
        vm.chainId(home);
        _deliver();
        vm.expectPartialRevert(IResultCommitments.InvalidCommitmentSigner.selector);
        qm.slashCommitment(jobId, t, delivered, promised, onOther);
        vm.expectPartialRevert(IResultCommitments.InvalidCommitmentSigner.selector);
        qm.slashCommitment(jobId, t, delivered, promised, onOtherChain);
    }

    function test_noSlash_providerTheJobWasNotAwardedTo() public {
        // qp2 signs a commitment for qp's job: it cannot be made to pay for it, nor can qp
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qp2Key);
        _deliver();
        vm.expectRevert(abi.encodeWithSelector(IResultCommitments.InvalidCommitmentSigner.selector, qp, qp2));
        qm.slashCommitment(jobId, t, delivered, promised, sig);
        QuotedJob memory asQp2 = t;
        asQp2.provider = qp2;
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId));
        qm.slashCommitment(jobId, asQp2, delivered, promised, sig);
    }

    function test_noDelivery_expirySlashesTheWholeLock() public {
        vm.warp(uint256(t.due) + 1);
        qm.expire(jobId, t);
        assertEq(staking.claimable(requester), t.stakeLocked);
        bytes32 promised = keccak256("another output");
        bytes memory sig = _signCommitment(qm, jobId, promised, qpKey);
        // slashed once: the commitment adds nothing to an expiry
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Expired));
        qm.slashCommitment(jobId, t, bytes32(0), promised, sig);
    }
}
