// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TokenFixture} from "../utils/TokenFixture.sol";
import {ITokenMarket, JobState, TokenQuote} from "../../src/interfaces/ITokenMarket.sol";
import {IResultCommitments} from "../../src/interfaces/IResultCommitments.sol";

/// @notice Result commitments on token jobs: the desk signs `ResultCommitment(jobId, keccak256(ids))` when its
/// stream ends. A provider that streams one sequence and delivers another is slashed by it, before or after
/// settlement; nobody can use a commitment against a provider that delivered what it committed to.
contract TokenCommitmentsTest is TokenFixture {
    function setUp() public {
        _deploy();
    }

    function _commit(bytes32 jobId, bytes memory tokens, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashCommitment(jobId, keccak256(tokens)));
        return abi.encodePacked(r, s, v);
    }

    function _settle(bytes32 jobId) internal {
        vm.warp(block.timestamp + CHALLENGE_WINDOW + 1);
        vm.roll(block.number + 2);
        market.finalize(jobId);
    }

    // ---------------------------------------------------------------- the cheat is caught

    function test_slashCommitment_deliveredOtherSequenceSlashesBeforeSettlement() public {
        bytes32 jobId = _open(_quote());
        bytes memory streamed = _tokens(64, false);
        bytes memory sig = _commit(jobId, streamed, providerKey);
        _deliver(jobId, _tokens(10, true)); // cheaper: ten tokens and EOS on chain
        uint256 lock = market.job(jobId).stakeLocked;
        vm.expectEmit(address(market));
        emit IResultCommitments.CommitmentSlashed(
            jobId, provider, keccak256(streamed), keccak256(_tokens(10, true)), lock
        );
        vm.prank(stranger); // anyone holding the signature
        market.slashCommitment(jobId, keccak256(streamed), sig);
        assertTrue(market.job(jobId).state == JobState.Slashed);
        assertEq(market.owed(requester), market.escrowFor(2e16, 64)); // the whole escrow back
        assertEq(staking.claimable(requester), lock);
        assertEq(market.owed(provider), 0);
    }

    function test_slashCommitment_afterSettlementTakesTheLockFromFreeStake() public {
        bytes32 jobId = _open(_quote());
        bytes memory streamed = _tokens(64, false);
        bytes memory sig = _commit(jobId, streamed, providerKey);
        _deliver(jobId, _tokens(10, true));
        uint256 lock = market.job(jobId).stakeLocked;
        _settle(jobId);
        uint256 stakeBefore = staking.stakeOf(provider);
        vm.prank(requester);
        market.slashCommitment(jobId, keccak256(streamed), sig);
        assertTrue(market.job(jobId).state == JobState.Slashed);
        assertEq(staking.claimable(requester), lock);
        assertEq(staking.stakeOf(provider), stakeBefore - lock);
        // once
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.WrongState.selector, jobId, JobState.Slashed));
        market.slashCommitment(jobId, keccak256(streamed), sig);
    }

    function test_slashCommitment_duringADisputeEndsIt() public {
        bytes32 jobId = _open(_quote());
        bytes memory streamed = _tokens(64, false);
        bytes memory sig = _commit(jobId, streamed, providerKey);
        bytes memory other = _tokens(64, false);
        other[3] = 0x62; // one id changed
        _deliver(jobId, other);
        vm.prank(challenger);
        market.challenge(jobId);
        uint256 lock = market.job(jobId).stakeLocked;
        market.slashCommitment(jobId, keccak256(streamed), sig);
        assertTrue(market.job(jobId).state == JobState.Slashed);
        assertEq(market.owed(challenger), BOND); // its bond back, and its share of the lock
        assertEq(staking.claimable(challenger), lock / 2);
        vm.prank(reexecutors[0]);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.WrongState.selector, jobId, JobState.Slashed));
        market.vote(jobId, true);
    }

    // ---------------------------------------------------------------- an honest provider cannot lose

    function test_slashCommitment_toTheDeliveredSequenceReverts() public {
        bytes32 jobId = _open(_quote());
        bytes memory tokens = _tokens(64, false);
        bytes memory sig = _commit(jobId, tokens, providerKey);
        _deliver(jobId, tokens);
        vm.expectRevert(abi.encodeWithSelector(IResultCommitments.CommitmentMatches.selector, jobId));
        market.slashCommitment(jobId, keccak256(tokens), sig);
        _settle(jobId);
        vm.expectRevert(abi.encodeWithSelector(IResultCommitments.CommitmentMatches.selector, jobId));
        market.slashCommitment(jobId, keccak256(tokens), sig);
        assertTrue(market.job(jobId).state == JobState.Settled);
    }

    function test_slashCommitment_replayedFromAnotherJobReverts() public {
        bytes32 first = _open(_quote());
        TokenQuote memory q = _quote();
        q.salt = 2;
        bytes32 second = _open(q);
        bytes memory streamed = _tokens(64, false);
        bytes memory sigFirst = _commit(first, streamed, providerKey); // honest on the first job
        _deliver(second, _tokens(10, true)); // and honest on the second, a shorter sequence
        address signer = _recover(second, keccak256(streamed), sigFirst);
        vm.expectRevert(
            abi.encodeWithSelector(IResultCommitments.InvalidCommitmentSigner.selector, provider, signer)
        );
        market.slashCommitment(second, keccak256(streamed), sigFirst);
        assertTrue(market.job(second).state == JobState.Delivered);
    }

    function test_slashCommitment_forgedByAnotherKeyReverts() public {
        bytes32 jobId = _open(_quote());
        (address forger, uint256 forgerKey) = makeKey("forger");
        bytes memory fake = _tokens(64, false);
        bytes memory sig = _commit(jobId, fake, forgerKey);
        _deliver(jobId, _tokens(10, true));
        vm.expectRevert(
            abi.encodeWithSelector(IResultCommitments.InvalidCommitmentSigner.selector, provider, forger)
        );
        market.slashCommitment(jobId, keccak256(fake), sig);
        assertTrue(market.job(jobId).state == JobState.Delivered);
    }

    function test_slashCommitment_beforeDeliveryReverts() public {
        bytes32 jobId = _open(_quote());
        bytes memory streamed = _tokens(64, false);
        bytes memory sig = _commit(jobId, streamed, providerKey);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.WrongState.selector, jobId, JobState.Awarded));
        market.slashCommitment(jobId, keccak256(streamed), sig);
        // nothing delivered by the deadline: expiry slashes it, once
        vm.warp(block.timestamp + 61);
        market.expire(jobId);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.WrongState.selector, jobId, JobState.Expired));
        market.slashCommitment(jobId, keccak256(streamed), sig);
    }

    function test_slashCommitment_signedByAnAuthorisedSolverCounts() public {
        (address solver, uint256 solverKey) = makeKey("token-solver");
        vm.prank(provider);
        staking.setSolver(solver, true);
        bytes32 jobId = _open(_quote());
        bytes memory streamed = _tokens(64, false);
        bytes memory sig = _commit(jobId, streamed, solverKey);
        _deliver(jobId, _tokens(10, true));
        market.slashCommitment(jobId, keccak256(streamed), sig);
        assertTrue(market.job(jobId).state == JobState.Slashed);
    }

    function _recover(bytes32 jobId, bytes32 outputHash, bytes memory sig) internal view returns (address) {
        (bytes32 r, bytes32 s) = abi.decode(abi.encodePacked(sig), (bytes32, bytes32));
        return ecrecover(market.hashCommitment(jobId, outputHash), uint8(sig[64]), r, s);
    }
}
