// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TokenFixture} from "../utils/TokenFixture.sol";
import {ITokenMarket, TokenJob, JobState, TokenQuote} from "../../src/interfaces/ITokenMarket.sol";
import {ModelInfo} from "../../src/interfaces/IModelRegistry.sol";

/// @notice The attacks on token jobs: a provider that truncates, pads or mangles its sequence, replays or forges
/// quotes; a requester or watcher that challenges honest work; a minority of lying re-executors.
contract TokenJobsTest is TokenFixture {
    function setUp() public {
        _deploy();
    }

    // ---------------------------------------------------------------- honest path

    function test_finalize_faithfulDeliveryPaysDeliveredTokens() public {
        bytes32 jobId = _open(_quote());
        uint256 escrow = market.escrowFor(2e16, 64);
        assertEq(token.balanceOf(address(market)), escrow);
        _deliver(jobId, _tokens(64, false));
        vm.warp(block.timestamp + CHALLENGE_WINDOW + 1);
        vm.roll(block.number + 2);
        market.finalize(jobId);
        TokenJob memory j = market.job(jobId);
        assertTrue(j.state == JobState.Settled);
        assertEq(market.owed(provider), uint256(2e16) * 64 / 1000);
        assertEq(market.owed(provider) + market.owed(requester), escrow);
        assertEq(staking.lockedOf(provider), 0);
    }

    function test_finalize_shortSequenceEndingInEosPaysOnlyItsTokens() public {
        bytes32 jobId = _open(_quote());
        _deliver(jobId, _tokens(10, true));
        vm.warp(block.timestamp + CHALLENGE_WINDOW + 1);
        vm.roll(block.number + 2);
        market.finalize(jobId);
        assertEq(market.owed(provider), uint256(2e16) * 10 / 1000);
        assertEq(market.owed(requester), market.escrowFor(2e16, 64) - uint256(2e16) * 10 / 1000);
    }

    function testFuzz_escrowCoversPay(uint96 pricePer1k, uint32 maxTokens, uint32 delivered) public view {
        delivered = uint32(bound(delivered, 0, maxTokens));
        uint256 escrow = market.escrowFor(pricePer1k, maxTokens);
        assertGe(escrow, uint256(pricePer1k) * delivered / 1000);
    }

    // ---------------------------------------------------------------- what the chain refuses

    function test_deliver_truncatedSequenceReverts() public {
        bytes32 jobId = _open(_quote());
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.Truncated.selector, 63, 64));
        market.deliver(jobId, _tokens(63, false));
        assertTrue(market.job(jobId).state == JobState.Awarded);
    }

    function test_expire_truncatingProviderLosesItsLock() public {
        bytes32 jobId = _open(_quote());
        uint256 lock = market.job(jobId).stakeLocked;
        vm.warp(block.timestamp + 61);
        vm.prank(stranger);
        market.expire(jobId);
        assertEq(staking.claimable(requester), lock);
        assertEq(market.owed(requester), market.escrowFor(2e16, 64));
        assertEq(staking.stakeOf(provider), STAKE - lock);
    }

    function test_deliver_tokenAfterEosReverts() public {
        bytes32 jobId = _open(_quote());
        bytes memory tokens = abi.encodePacked(uint32(97), EOS, uint32(98), EOS);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.TokenAfterEos.selector, 2));
        market.deliver(jobId, tokens);
    }

    function test_deliver_idOutsideVocabReverts() public {
        bytes32 jobId = _open(_quote());
        bytes memory tokens = abi.encodePacked(uint32(97), uint32(257), EOS);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.TokenOutsideVocab.selector, 1, 257, 257));
        market.deliver(jobId, tokens);
    }

    function test_deliver_moreThanBudgetReverts() public {
        bytes32 jobId = _open(_quote());
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.TooManyTokens.selector, 65, 64));
        market.deliver(jobId, _tokens(65, false));
    }

    function test_deliver_partialIdReverts() public {
        bytes32 jobId = _open(_quote());
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.BadTokenEncoding.selector, 3));
        market.deliver(jobId, hex"000061");
    }

    function test_deliver_strangerReverts() public {
        bytes32 jobId = _open(_quote());
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.NotProviderOrSolver.selector, stranger, provider));
        market.deliver(jobId, _tokens(64, false));
    }

    function test_deliver_pastDueReverts() public {
        bytes32 jobId = _open(_quote());
        vm.warp(block.timestamp + 61);
        vm.prank(provider);
        vm.expectPartialRevert(ITokenMarket.PastDue.selector);
        market.deliver(jobId, _tokens(64, false));
    }

    function test_open_replayedQuoteReverts() public {
        TokenQuote memory q = _quote();
        bytes32 jobId = _open(q);
        bytes memory sig = _sign(q, providerKey);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.JobExists.selector, jobId));
        market.open(q, sig);
    }

    function test_open_forgedQuoteReverts() public {
        TokenQuote memory q = _quote();
        (, uint256 key) = makeKey("forger");
        bytes memory sig = _sign(q, key);
        vm.prank(requester);
        vm.expectPartialRevert(ITokenMarket.InvalidQuoteSigner.selector);
        market.open(q, sig);
    }

    function test_open_byAnotherThanTheRequesterReverts() public {
        TokenQuote memory q = _quote();
        bytes memory sig = _sign(q, providerKey);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.NotRequester.selector, stranger, requester));
        market.open(q, sig);
    }

    function test_open_budgetAboveModelMaxReverts() public {
        TokenQuote memory q = _quote();
        q.maxTokens = 1025;
        bytes memory sig = _sign(q, providerKey);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.BadBudget.selector, 1025, 1024));
        market.open(q, sig);
    }

    // ---------------------------------------------------------------- disputes

    function _challenged() internal returns (bytes32 jobId) {
        jobId = _open(_quote());
        _deliver(jobId, _tokens(64, false));
        vm.prank(challenger);
        market.challenge(jobId);
    }

    function test_vote_quorumUnfaithfulSlashesAndRefunds() public {
        bytes32 jobId = _challenged();
        uint256 lock = market.job(jobId).stakeLocked;
        vm.prank(reexecutors[0]);
        market.vote(jobId, false);
        vm.prank(reexecutors[1]);
        market.vote(jobId, false);
        assertTrue(market.job(jobId).state == JobState.Slashed);
        assertEq(market.owed(requester), market.escrowFor(2e16, 64));
        assertEq(market.owed(challenger), BOND);
        assertEq(staking.claimable(challenger), lock / 2);
        assertEq(staking.claimable(requester), lock - lock / 2);
        assertEq(market.owed(provider), 0);
    }

    function test_vote_honestWorkChallengedCostsTheChallengerItsBond() public {
        bytes32 jobId = _challenged();
        vm.prank(reexecutors[0]);
        market.vote(jobId, true);
        vm.prank(reexecutors[2]);
        market.vote(jobId, true);
        assertTrue(market.job(jobId).state == JobState.Settled);
        assertEq(market.owed(provider), uint256(2e16) * 64 / 1000 + BOND);
        assertEq(market.owed(challenger), 0);
    }

    function test_vote_oneLyingReexecutorCannotSlash() public {
        bytes32 jobId = _challenged();
        vm.prank(reexecutors[0]);
        market.vote(jobId, false);
        assertTrue(market.job(jobId).state == JobState.Challenged);
        vm.prank(reexecutors[1]);
        market.vote(jobId, true);
        vm.prank(reexecutors[2]);
        market.vote(jobId, true);
        assertTrue(market.job(jobId).state == JobState.Settled);
        assertEq(staking.stakeOf(provider), STAKE);
    }

    function test_vote_strangerReverts() public {
        bytes32 jobId = _challenged();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.NotReexecutor.selector, stranger, MODEL));
        market.vote(jobId, false);
    }

    function test_vote_twiceReverts() public {
        bytes32 jobId = _challenged();
        vm.startPrank(reexecutors[0]);
        market.vote(jobId, false);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.AlreadyVoted.selector, jobId, reexecutors[0]));
        market.vote(jobId, false);
        vm.stopPrank();
    }

    function test_vote_providerCannotJudgeItsOwnJob() public {
        vm.prank(owner);
        market.setReexecutor(MODEL, provider, true);
        bytes32 jobId = _challenged();
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.OwnJob.selector, provider));
        market.vote(jobId, true);
    }

    function test_vote_unstakedReexecutorReverts() public {
        address idle = makeAddr("idle");
        vm.prank(owner);
        market.setReexecutor(MODEL, idle, true);
        bytes32 jobId = _challenged();
        vm.prank(idle);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.ReexecutorStakeTooLow.selector, idle, 0, 10e18));
        market.vote(jobId, false);
    }

    function test_vote_afterWindowRevertsAndFinalizeReturnsTheBond() public {
        bytes32 jobId = _challenged();
        vm.warp(block.timestamp + VOTE_WINDOW + 1);
        vm.prank(reexecutors[0]);
        vm.expectPartialRevert(ITokenMarket.VoteClosed.selector);
        market.vote(jobId, false);
        market.finalize(jobId);
        assertTrue(market.job(jobId).state == JobState.Settled);
        assertEq(market.owed(challenger), BOND);
        assertEq(market.owed(provider), uint256(2e16) * 64 / 1000);
    }

    function test_challenge_afterWindowReverts() public {
        bytes32 jobId = _open(_quote());
        _deliver(jobId, _tokens(64, false));
        vm.warp(block.timestamp + CHALLENGE_WINDOW + 1);
        vm.prank(challenger);
        vm.expectPartialRevert(ITokenMarket.ChallengeWindowClosed.selector);
        market.challenge(jobId);
    }

    function test_finalize_beforeWindowReverts() public {
        bytes32 jobId = _open(_quote());
        _deliver(jobId, _tokens(64, false));
        vm.expectPartialRevert(ITokenMarket.WindowOpen.selector);
        market.finalize(jobId);
    }

    function test_finalize_auditedJobGoesToReexecutors() public {
        TokenQuote memory q = _quote();
        q.modelId = AUDITED;
        bytes32 jobId = _open(q);
        _deliver(jobId, _tokens(64, false));
        vm.warp(block.timestamp + CHALLENGE_WINDOW + 1);
        vm.roll(block.number + 2);
        market.finalize(jobId);
        assertTrue(market.job(jobId).state == JobState.Challenged);
        assertEq(market.owed(provider), 0);
        vm.prank(reexecutors[1]);
        market.vote(jobId, false);
        vm.prank(reexecutors[2]);
        market.vote(jobId, false);
        assertTrue(market.job(jobId).state == JobState.Slashed);
        assertEq(staking.claimable(requester), market.job(jobId).stakeLocked);
    }

    function test_drawAudit_inTheDeliveryBlockReverts() public {
        bytes32 jobId = _open(_quote());
        _deliver(jobId, _tokens(64, false));
        vm.roll(block.number + 1);
        vm.expectPartialRevert(ITokenMarket.AuditTooEarly.selector);
        market.drawAudit(jobId);
    }

    function test_drawAudit_twiceReverts() public {
        bytes32 jobId = _open(_quote());
        _deliver(jobId, _tokens(64, false));
        vm.roll(block.number + 2);
        assertFalse(market.drawAudit(jobId));
        vm.expectPartialRevert(ITokenMarket.WrongState.selector);
        market.drawAudit(jobId);
    }

    function test_setTokenModel_byStrangerReverts() public {
        vm.prank(stranger);
        vm.expectRevert();
        market.setTokenModel(MODEL, _config(0));
    }

    function test_setTokenModel_servesOnlyTheRegistrysReexecutionTier() public {
        bytes32 unknown = keccak256("not registered");
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.NotReexecutionModel.selector, unknown, 0));
        market.setTokenModel(unknown, _config(0));
        vm.stopPrank();
        // a proof-tier model (a verifier, an instance layout) is not a token model
        ModelInfo memory zk = _tokenModel(0);
        zk.verifier = address(staking);
        zk.outputOffset = 1;
        zk.outputLength = 2;
        zk.instanceCount = 3;
        zk.proofModes = 3;
        bytes32 zkId = registry.register(zk);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.NotReexecutionModel.selector, zkId, 3));
        market.setTokenModel(zkId, _config(0));
        // the audit share is the tier's: the market's config repeats it or is refused
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.AuditRateMismatch.selector, 10_000, 2500));
        market.setTokenModel(AUDITED, _config(2500));
        vm.stopPrank();
        assertEq(market.tokenModel(AUDITED).auditRateBps, 10_000);
        assertEq(address(market.registry()), address(registry));
    }

    function test_open_aRegisteredModelTheMarketDoesNotServeReverts() public {
        bytes32 other = registry.register(_tokenModel(2500));
        TokenQuote memory q = _quote();
        q.modelId = other;
        bytes memory signature = _sign(q, providerKey);
        vm.expectRevert(abi.encodeWithSelector(ITokenMarket.UnknownTokenModel.selector, other));
        vm.prank(requester);
        market.open(q, signature);
    }
}
