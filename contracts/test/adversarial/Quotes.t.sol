// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {QuoteMarket} from "../../src/QuoteMarket.sol";
import {LayoutWord} from "../../src/libraries/LayoutWord.sol";
import {ModelInfo, ModelLayout, MODES_REEXECUTION} from "../../src/interfaces/IModelRegistry.sol";
import {MockVerifier} from "../mocks/MockVerifier.sol";
import {MockERC1271Wallet} from "../mocks/MockERC1271Wallet.sol";
import {IQuoteMarket, Quote, QuotedJob} from "../../src/interfaces/IQuoteMarket.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {Intent, JobState, PROOF_OPTIMISTIC, PROOF_ZK} from "../../src/MarketStructs.sol";

/// @notice The exploits feared for the one-transaction award from signed quotes: forged, expired, replayed and
/// misdirected quotes, unauthorised signers, too little stake, an award too late for the promised latency.
/// Every refusal leaves no state behind (nonce unused, nothing charged, nothing locked).
contract QuotesTest is QuoteFixture {
    using IntentBuilder for Intent;

    function setUp() public {
        _deployQuote();
    }

    // ------------------------------------------------------------------ the path that works

    function test_openAwarded_awardsLocksAndCharges() public {
        uint256 before = token.balanceOf(requester);
        (bytes32 jobId, QuotedJob memory t) = _open(1, qp, qpKey, 0.5e18);
        (JobState st, bytes32 word) = qm.jobState(jobId);
        assertEq(uint256(st), uint256(JobState.Awarded));
        assertEq(uint256(word) >> 8, uint256(qm.hashTerms(t)) >> 8, "word holds the terms hash");
        assertEq(staking.lockedOf(qp), 1e18, "held: price * stakeMultiple");
        assertEq(before - token.balanceOf(requester), qm.escrowFor(0.5e18), "price + fee only");
        assertTrue(qm.isNonceUsed(requester, 1));
    }

    function test_deliver_settlesAndPays() public {
        (bytes32 jobId, QuotedJob memory t) = _open(1, qp, qpKey, 0.5e18);
        uint256[] memory out = _zkOutput();
        vm.prank(qp);
        qm.deliver(jobId, t, out, _proof(t.inputCommitment, out));
        (JobState st,) = qm.jobState(jobId);
        assertEq(uint256(st), uint256(JobState.Settled));
        assertEq(qm.owed(qp), 0.5e18);
        assertEq(qm.feesOwed(), 0.005e18);
        assertEq(staking.lockedOf(qp), 0);
    }

    function test_openAwarded_solverSignsForItsProvider() public {
        Intent memory intent = _qIntent(2);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qSolverKey);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        assertEq(staking.lockedOf(qp), 0.6e18);
    }

    function test_openAwarded_relayedWithRequesterAcceptance() public {
        Intent memory intent = _qIntent(3);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory accept = _sign(qm, q, requesterKey);
        vm.prank(stranger);
        qm.openAwarded(intent, q, _sign(qm, q, qpKey), accept);
        assertTrue(qm.isNonceUsed(requester, 3));
    }

    function test_openAwarded_contractProviderSignsByErc1271() public {
        (address owner_, uint256 ownerKey) = makeKey("wallet-owner");
        MockERC1271Wallet wallet = new MockERC1271Wallet(owner_);
        vm.prank(qp2);
        staking.stakeFor(address(wallet), 10e18);
        Intent memory intent = _qIntent(30);
        Quote memory q = _quote(qm.hashIntent(intent), address(wallet), 0.3e18);
        bytes memory sig = _sign(qm, q, ownerKey);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        assertEq(staking.lockedOf(address(wallet)), 0.6e18);
        // another key's signature is refused by the wallet
        Intent memory other = _qIntent(31);
        q = _quote(qm.hashIntent(other), address(wallet), 0.3e18);
        sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.InvalidQuoteSigner.selector, address(wallet), qp));
        vm.prank(requester);
        qm.openAwarded(other, q, sig, "");
    }

    // ------------------------------------------------------------------ exploits

    function test_refuses_strangerWithoutAcceptance() public {
        Intent memory intent = _qIntent(4);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotRequester.selector, qp, requester));
        vm.prank(qp);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_acceptanceOfAnotherQuote() public {
        // the requester accepted a cheap quote; a relayer swaps in a dearer one from the same provider
        Intent memory intent = _qIntent(5);
        bytes32 jobId = qm.hashIntent(intent);
        Quote memory cheap = _quote(jobId, qp, 0.1e18);
        Quote memory dear = _quote(jobId, qp, 0.9e18);
        bytes memory accept = _sign(qm, cheap, requesterKey);
        bytes memory sig = _sign(qm, dear, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidSignature.selector, requester, jobId));
        vm.prank(qp);
        qm.openAwarded(intent, dear, sig, accept);
        _assertNothing(intent);
    }

    function test_refuses_forgedQuote() public {
        Intent memory intent = _qIntent(6);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        (address other, uint256 otherKey) = makeKey("forger");
        bytes memory sig = _sign(qm, q, otherKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.InvalidQuoteSigner.selector, qp, other));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_alteredQuote() public {
        // signed at one price, submitted at another
        Intent memory intent = _qIntent(7);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        q.price = 0.2e18;
        vm.expectPartialRevert(IQuoteMarket.InvalidQuoteSigner.selector);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_malformedSignature() public {
        Intent memory intent = _qIntent(8);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.InvalidQuoteSigner.selector, qp, address(0)));
        vm.prank(requester);
        qm.openAwarded(intent, q, hex"1234", "");
    }

    function test_refuses_unauthorisedSolver() public {
        // qSolver works for qp, not for qp2
        Intent memory intent = _qIntent(9);
        Quote memory q = _quote(qm.hashIntent(intent), qp2, 0.3e18);
        bytes memory sig = _sign(qm, q, qSolverKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.InvalidQuoteSigner.selector, qp2, qSolver));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_expiredQuote() public {
        Intent memory intent = _qIntent(10);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.warp(q.expiry);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.QuoteExpired.selector, q.expiry, block.timestamp));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_replayedQuote() public {
        Intent memory intent = _qIntent(11);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        // the same intent again: its nonce is spent (a job is awarded at most once)
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, 11));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        // the same quote on another intent: it names the first job
        Intent memory other = _qIntent(12);
        vm.expectRevert(
            abi.encodeWithSelector(IQuoteMarket.QuoteForOtherJob.selector, q.jobId, qm.hashIntent(other))
        );
        vm.prank(requester);
        qm.openAwarded(other, q, sig, "");
        _assertNothing(other, 0.6e18);
    }

    function test_refuses_quoteFromAnotherMarket() public {
        QuoteMarket other = new QuoteMarket(token, registry, staking, treasury, owner, _defaultParams());
        Intent memory intent = _qIntent(13);
        // a quote for the same intent on the other market: another job id
        Quote memory q = _quote(other.hashIntent(intent), qp, 0.3e18);
        assertTrue(q.jobId != qm.hashIntent(intent));
        bytes memory sig = _sign(other, q, qpKey);
        vm.expectRevert(
            abi.encodeWithSelector(IQuoteMarket.QuoteForOtherJob.selector, q.jobId, qm.hashIntent(intent))
        );
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        // relabelled for this market's job, the other market's signature recovers someone else
        q.jobId = qm.hashIntent(intent);
        sig = _sign(other, q, qpKey);
        vm.expectPartialRevert(IQuoteMarket.InvalidQuoteSigner.selector);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_quoteFromAnotherChain() public {
        Intent memory intent = _qIntent(14);
        uint256 home = block.chainid;
        vm.chainId(home + 1);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.chainId(home);
        // on the home chain the intent has another digest
        vm.expectPartialRevert(IQuoteMarket.QuoteForOtherJob.selector);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_stakeTooSmall() public {
        Intent memory intent = _qIntent(15).withMinStake(STAKE + 1);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IStaking.InsufficientStake.selector, qp, STAKE, STAKE + 1));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_lateAward() public {
        // the promised latency would end past the intent's deadline
        Intent memory intent = _qIntent(16).withDeadline(uint64(block.timestamp + 20));
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.LatencyTooLong.selector, uint32(30), uint256(20))
        );
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
        _assertNothing(intent);
    }

    function test_refuses_priceAboveMax() public {
        Intent memory intent = _qIntent(17);
        Quote memory q = _quote(qm.hashIntent(intent), qp, intent.maxPrice + 1);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.BadQuotePrice.selector, q.price, intent.maxPrice));
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
    }

    function test_refuses_intentsThisMarketDoesNotRun() public {
        Intent memory optimistic = _qIntent(18).withModel(modelId).withProofMode(PROOF_OPTIMISTIC);
        Quote memory q = _quote(qm.hashIntent(optimistic), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.UnsupportedProofMode.selector, modelId, PROOF_OPTIMISTIC)
        );
        vm.prank(requester);
        qm.openAwarded(optimistic, q, sig, "");
        ModelInfo memory tokenModel; // the registry's re-execution tier: TokenMarket's, never proven here
        tokenModel.proofModes = MODES_REEXECUTION;
        tokenModel.batchSize = 1;
        bytes32 tokenModelId = registry.register(tokenModel);
        Intent memory tokens = _qIntent(21).withModel(tokenModelId);
        q = _quote(qm.hashIntent(tokens), qp, 0.3e18);
        sig = _sign(qm, q, qpKey);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.UnsupportedProofMode.selector, tokenModelId, PROOF_ZK)
        );
        vm.prank(requester);
        qm.openAwarded(tokens, q, sig, "");
        Intent memory reverse = _qIntent(19).withAuctionType(0);
        q = _quote(qm.hashIntent(reverse), qp, 0.3e18);
        sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.WrongAuctionType.selector, uint8(0), uint8(2)));
        vm.prank(requester);
        qm.openAwarded(reverse, q, sig, "");
        Intent memory callback = _qIntent(20).withCallbackGas(100_000);
        q = _quote(qm.hashIntent(callback), qp, 0.3e18);
        sig = _sign(qm, q, qpKey);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.CallbackUnsupported.selector, uint32(100_000)));
        vm.prank(requester);
        qm.openAwarded(callback, q, sig, "");
    }

    function test_refuses_whilePaused() public {
        vm.prank(owner);
        qm.pause();
        Intent memory intent = _qIntent(21);
        Quote memory q = _quote(qm.hashIntent(intent), qp, 0.3e18);
        bytes memory sig = _sign(qm, q, qpKey);
        vm.expectRevert();
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
    }

    // ------------------------------------------------------------------ later steps with forged terms

    function test_deliver_refusesForgedTermsStrangersAndLateness() public {
        (bytes32 jobId, QuotedJob memory t) = _open(22, qp, qpKey, 0.5e18);
        uint256[] memory out = _zkOutput();
        bytes memory proof = _proof(t.inputCommitment, out);
        QuotedJob memory forged = abi.decode(abi.encode(t), (QuotedJob));
        forged.price = 1e18;
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId));
        vm.prank(qp);
        qm.deliver(jobId, forged, out, proof);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, qp, stranger));
        vm.prank(stranger);
        qm.deliver(jobId, t, out, proof);
        vm.warp(uint256(t.due) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.DeliveryTooLate.selector, jobId, t.due, t.due + 1)
        );
        vm.prank(qp);
        qm.deliver(jobId, t, out, proof);
    }

    /// @dev The layout rides in the terms (no registry call at delivery): terms naming another verifier (one that
    /// accepts anything) or another output position do not match the job's word.
    function test_deliver_refusesTermsWithAnotherLayout() public {
        (bytes32 jobId, QuotedJob memory t) = _open(24, qp, qpKey, 0.5e18);
        assertEq(t.layout, LayoutWord.pack(registry.layoutOf(t.modelId), registry.proofModesOf(t.modelId)));
        uint256[] memory out = _zkOutput();
        QuotedJob memory forged = abi.decode(abi.encode(t), (QuotedJob));
        ModelLayout memory m = registry.layoutOf(t.modelId);
        m.verifier = address(new MockVerifier());
        forged.layout = LayoutWord.pack(m, registry.proofModesOf(t.modelId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId));
        vm.prank(qp);
        qm.deliver(jobId, forged, out, hex"01");
        m = registry.layoutOf(t.modelId);
        m.outputOffset += 1;
        forged.layout = LayoutWord.pack(m, registry.proofModesOf(t.modelId));
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId));
        vm.prank(qp);
        qm.deliver(jobId, forged, out, _proof(t.inputCommitment, out));
        (JobState st,) = qm.jobState(jobId);
        assertEq(uint256(st), uint256(JobState.Awarded));
    }

    function test_deliver_refusesAProofOfAnotherOutput() public {
        (bytes32 jobId, QuotedJob memory t) = _open(23, qp, qpKey, 0.5e18);
        uint256[] memory out = _zkOutput();
        bytes memory proof = _proof(t.inputCommitment, out);
        out[0] = 8;
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
        vm.prank(qp);
        qm.deliver(jobId, t, out, proof);
    }

    function test_expire_slashesAndRefunds() public {
        (bytes32 jobId, QuotedJob memory t) = _open(24, qp, qpKey, 0.5e18);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, uint256(t.due)));
        qm.expire(jobId, t);
        vm.warp(uint256(t.due) + 1);
        vm.prank(stranger);
        qm.expire(jobId, t);
        assertEq(staking.claimable(requester), 1e18, "the whole lock");
        assertEq(qm.owed(requester), qm.escrowFor(0.5e18), "escrow back");
        assertEq(staking.stakeOf(qp), STAKE - 1e18);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Expired));
        qm.expire(jobId, t);
    }

    function _assertNothing(Intent memory intent) internal view {
        _assertNothing(intent, 0);
    }

    /// @dev Nothing recorded for `intent`, and `qp` holds only `heldByQp` (its other jobs' stake).
    function _assertNothing(Intent memory intent, uint256 heldByQp) internal view {
        bytes32 jobId = qm.hashIntent(intent);
        (JobState st,) = qm.jobState(jobId);
        assertEq(uint256(st), uint256(JobState.None));
        assertFalse(qm.isNonceUsed(requester, intent.nonce));
        assertEq(staking.lockedOf(qp), heldByQp);
        assertEq(staking.lockedOf(qp2), 0);
    }
}
