// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {MockBatchVerifier} from "../mocks/MockBatchVerifier.sol";
import {
    IQuoteMarket,
    Quote,
    QuotedJob,
    SKIP_INPUT_MISMATCH,
    SKIP_LATE,
    SKIP_NOT_AUTHORIZED,
    SKIP_NOT_AWARDED,
    SKIP_OTHER_MODEL,
    SKIP_TERMS_MISMATCH
} from "../../src/interfaces/IQuoteMarket.sol";
import {ModelInfo, INPUT_HASHED, INPUT_POLYCOMMIT} from "../../src/interfaces/IModelRegistry.sol";
import {AUCTION_QUOTE, Intent, JobState} from "../../src/MarketStructs.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";

/// @notice The exploits feared for `deliverBatch` (one proof settling N jobs): a job in two slots, a slot proved
/// on another input than its job's, outputs moved between slots, another provider's job, a job of another
/// model, a replayed batch, a job already settled, a late job, a mixed batch where one job fails. Each job is
/// checked and paid on its own slot only, settles at most once, and a failing job never blocks the others.
contract BatchesTest is QuoteFixture {
    using IntentBuilder for Intent;

    uint256 internal constant N = 4;
    uint256 internal constant L = 2;

    MockBatchVerifier internal polyVerifier;
    MockBatchVerifier internal hashVerifier;
    bytes32 internal polyModel; // polycommit, 4 jobs per proof
    bytes32 internal hashModel; // hashed, 4 jobs per proof
    address internal requester2;
    uint256 internal nextNonce = 100;

    struct Slot {
        bytes32 jobId;
        QuotedJob terms;
        uint256 commitment; // what the slot was proved on (hashed: the instance; polycommit: its point's hash)
        uint256 point; // polycommit: the point's seed
        uint256[] output;
    }

    function setUp() public {
        _deployQuote();
        polyVerifier = new MockBatchVerifier(64 * N);
        hashVerifier = new MockBatchVerifier(0);
        polyModel = registry.register(_batchInfo(address(polyVerifier), INPUT_POLYCOMMIT));
        hashModel = registry.register(_batchInfo(address(hashVerifier), INPUT_HASHED));
        uint256 key;
        (requester2, key) = makeKey("requester-2");
        token.mint(requester2, FUNDS);
        vm.prank(requester2);
        token.approve(address(qm), type(uint256).max);
    }

    function _batchInfo(address v, uint8 binding) internal view returns (ModelInfo memory info) {
        info = _modelInfo(1, 0);
        info.verifier = v;
        info.inputBinding = binding;
        info.commitmentIndex = 0;
        info.outputOffset = binding == INPUT_HASHED ? uint8(N) : 0;
        info.outputLength = uint16(L);
        info.instanceCount = uint16(binding == INPUT_HASHED ? N + N * L : N * L);
        info.batchSize = uint8(N);
    }

    // ------------------------------------------------------------------ helpers

    function _point(uint256 seed) internal pure returns (bytes memory) {
        return abi.encode(seed, uint256(77));
    }

    function _commitmentOf(bytes32 model, uint256 seed) internal view returns (uint256) {
        return model == polyModel ? uint256(keccak256(_point(seed))) : seed;
    }

    /// @dev Opens a job of `model` on input `seed` for `who`, quoted by `provider_` (key) at `price`.
    function _openJob(bytes32 model, uint256 seed, address who, address provider_, uint256 key, uint256 price)
        internal
        returns (Slot memory s)
    {
        Intent memory intent = IntentBuilder.init(who, model).withAuctionType(AUCTION_QUOTE)
            .withNonce(nextNonce++).withCommitment(_commitmentOf(model, seed));
        s.jobId = qm.hashIntent(intent);
        Quote memory q = _quote(s.jobId, provider_, price);
        s.terms = _terms(intent, q);
        bytes memory sig = _sign(qm, q, key);
        vm.prank(who);
        qm.openAwarded(intent, q, sig, "");
        s.point = seed;
        s.commitment = s.terms.inputCommitment;
        s.output = new uint256[](L);
        (s.output[0], s.output[1]) = (seed * 10 + 1, seed * 10 + 2);
    }

    function _fourJobs(bytes32 model) internal returns (Slot[] memory slots) {
        slots = new Slot[](N);
        for (uint256 i; i < N; ++i) {
            slots[i] =
                _openJob(model, i + 1, i % 2 == 0 ? requester : requester2, qp, qpKey, 0.1e18 * (i + 1));
        }
    }

    function _padding(bytes32 model, uint256 seed) internal pure returns (Slot memory s) {
        s.point = seed;
        s.commitment = model == bytes32(0) ? 0 : seed; // hashed padding: what the slot was proved on
        s.terms.inputCommitment = s.commitment;
        s.output = new uint256[](L);
    }

    /// @dev The proof the (mock) verifier accepts for what each slot was proved on.
    function _prove(bytes32 model, Slot[] memory slots) internal view returns (bytes memory) {
        bool poly = model == polyModel;
        uint256[] memory inst = new uint256[](poly ? N * L : N + N * L);
        bytes memory points;
        uint256 at = poly ? 0 : N;
        for (uint256 i; i < N; ++i) {
            if (poly) points = abi.encodePacked(points, _point(slots[i].point));
            else inst[i] = slots[i].commitment;
            for (uint256 k; k < L; ++k) {
                inst[at + L * i + k] = slots[i].output[k];
            }
        }
        return poly ? polyVerifier.proofFor(points, inst) : hashVerifier.proofFor("", inst);
    }

    function _args(Slot[] memory slots)
        internal
        pure
        returns (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs)
    {
        ids = new bytes32[](slots.length);
        terms = new QuotedJob[](slots.length);
        outs = new uint256[][](slots.length);
        for (uint256 i; i < slots.length; ++i) {
            (ids[i], terms[i], outs[i]) = (slots[i].jobId, slots[i].terms, slots[i].output);
        }
    }

    function _deliver(address caller, bytes32 model, Slot[] memory slots, bytes memory proof)
        internal
        returns (uint256 settled)
    {
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(slots);
        vm.prank(caller);
        settled = qm.deliverBatch(model, ids, terms, outs, proof);
    }

    function _state(bytes32 jobId) internal view returns (JobState st) {
        (st,) = qm.jobState(jobId);
    }

    // ------------------------------------------------------------------ the path that works

    function test_deliverBatch_settlesEveryJobOnItsOwnSlot() public {
        bytes32[2] memory models = [polyModel, hashModel];
        for (uint256 m; m < 2; ++m) {
            Slot[] memory slots = _fourJobs(models[m]);
            uint256 owedBefore = qm.owed(qp);
            uint256 callsBefore = polyVerifier.calls() + hashVerifier.calls();
            vm.expectEmit(true, true, false, true, address(qm));
            emit IQuoteMarket.BatchDelivered(models[m], qp, 0xf, 0);
            uint256 settled = _deliver(qp, models[m], slots, _prove(models[m], slots));
            assertEq(settled, 0xf);
            assertEq(polyVerifier.calls() + hashVerifier.calls() - callsBefore, 1, "one verifier call");
            // each job paid its own price (1..4 x 0.1), its stake released
            assertEq(qm.owed(qp) - owedBefore, 1e18);
            for (uint256 i; i < N; ++i) {
                assertEq(uint256(_state(slots[i].jobId)), uint256(JobState.Settled));
            }
            assertEq(staking.lockedOf(qp), 0, "every hold released");
        }
    }

    function test_deliverBatch_solverDeliversForItsProvider() public {
        Slot[] memory slots = _fourJobs(hashModel);
        assertEq(_deliver(qSolver, hashModel, slots, _prove(hashModel, slots)), 0xf);
    }

    /// @dev The word a batch leaves is the one `deliver` leaves: a result commitment can still be enforced.
    function test_deliverBatch_resultCommitmentStillSlashes() public {
        Slot[] memory slots = _fourJobs(hashModel);
        _deliver(qp, hashModel, slots, _prove(hashModel, slots));
        bytes32 delivered = keccak256(abi.encode(slots[1].output));
        bytes32 committed = keccak256("another output");
        bytes memory sig = _signCommitment(qm, slots[1].jobId, committed, qpKey);
        qm.slashCommitment(slots[1].jobId, slots[1].terms, delivered, committed, sig);
        assertEq(uint256(_state(slots[1].jobId)), uint256(JobState.Slashed));
    }

    // ------------------------------------------------------------------ exploits

    /// @dev 1. The same job in two slots, and the same batch twice (replay): paid once.
    function test_deliverBatch_settlesEachJobOnce() public {
        Slot[] memory slots = _fourJobs(hashModel);
        slots[2] = slots[1];
        uint256 owedBefore = qm.owed(qp);
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(slots[1].jobId, 2, SKIP_NOT_AWARDED);
        bytes memory proof = _prove(hashModel, slots);
        assertEq(_deliver(qp, hashModel, slots, proof), 0xb);
        assertEq(qm.owed(qp) - owedBefore, 0.1e18 + 0.2e18 + 0.4e18, "job 1 paid once");
        // the whole batch again: nothing left to settle
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(slots);
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.NothingSettled.selector, hashModel));
        qm.deliverBatch(hashModel, ids, terms, outs, proof);
        // a settled job in a new batch is skipped, the others settle
        Slot[] memory next = _fourJobs(hashModel);
        next[3] = slots[0];
        owedBefore = qm.owed(qp);
        assertEq(_deliver(qp, hashModel, next, _prove(hashModel, next)), 0x7);
        assertEq(qm.owed(qp) - owedBefore, 0.1e18 + 0.2e18 + 0.3e18);
    }

    /// @dev 2. Slot 2 proved on another input than job 2's. Polycommit: job 2 skipped and still Awarded, the
    /// others settle. Hashed: the market writes job 2's commitment, so the proof fails and nothing changes.
    function test_deliverBatch_swappedInputFailsOnlyItsJob() public {
        Slot[] memory slots = _fourJobs(polyModel);
        slots[2].point = 99;
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(slots[2].jobId, 2, SKIP_INPUT_MISMATCH);
        assertEq(_deliver(qp, polyModel, slots, _prove(polyModel, slots)), 0xb);
        assertEq(uint256(_state(slots[2].jobId)), uint256(JobState.Awarded));
        assertEq(staking.lockedOf(qp), slots[2].terms.stakeLocked, "only job 2 still held");

        Slot[] memory hashed = _fourJobs(hashModel);
        hashed[2].commitment = 99; // proved on input 99, job 2 committed to 3
        bytes memory proof = _prove(hashModel, hashed);
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(hashed);
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.BatchProofRejected.selector, hashModel));
        qm.deliverBatch(hashModel, ids, terms, outs, proof);
        for (uint256 i; i < N; ++i) {
            assertEq(uint256(_state(hashed[i].jobId)), uint256(JobState.Awarded));
        }
    }

    /// @dev 3. Outputs exchanged between slots: the proof fails, nothing settles.
    function test_deliverBatch_outputsMovedBetweenSlots() public {
        bytes32[2] memory models = [polyModel, hashModel];
        for (uint256 m; m < 2; ++m) {
            Slot[] memory slots = _fourJobs(models[m]);
            bytes memory proof = _prove(models[m], slots);
            (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(slots);
            (outs[1], outs[2]) = (outs[2], outs[1]);
            vm.prank(qp);
            vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.BatchProofRejected.selector, models[m]));
            qm.deliverBatch(models[m], ids, terms, outs, proof);
        }
    }

    /// @dev 4. A job awarded to another provider: skipped, not paid to the caller, still Awarded.
    function test_deliverBatch_otherProvidersJob() public {
        Slot[] memory slots = _fourJobs(hashModel);
        slots[3] = _openJob(hashModel, 4, requester, qp2, qp2Key, 0.4e18);
        uint256 owedBefore = qm.owed(qp);
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(slots[3].jobId, 3, SKIP_NOT_AUTHORIZED);
        assertEq(_deliver(qp, hashModel, slots, _prove(hashModel, slots)), 0x7);
        assertEq(qm.owed(qp) - owedBefore, 0.6e18);
        assertEq(qm.owed(qp2), 0);
        assertEq(uint256(_state(slots[3].jobId)), uint256(JobState.Awarded));
        // a stranger delivers nothing at all
        Slot[] memory more = _fourJobs(hashModel);
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(more);
        bytes memory proof = _prove(hashModel, more);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.NothingSettled.selector, hashModel));
        qm.deliverBatch(hashModel, ids, terms, outs, proof);
    }

    /// @dev A job of another model in a slot (here the single-job model): skipped.
    function test_deliverBatch_jobOfAnotherModel() public {
        Slot[] memory slots = _fourJobs(hashModel);
        (bytes32 jobId, QuotedJob memory t) = _open(1, qp, qpKey, 0.5e18);
        slots[0].jobId = jobId;
        slots[0].terms = t;
        slots[0].commitment = t.inputCommitment;
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(jobId, 0, SKIP_OTHER_MODEL);
        assertEq(_deliver(qp, hashModel, slots, _prove(hashModel, slots)), 0xe);
        assertEq(uint256(_state(jobId)), uint256(JobState.Awarded));
    }

    /// @dev Terms that are not the job's (a raised price): skipped.
    function test_deliverBatch_forgedTerms() public {
        Slot[] memory slots = _fourJobs(hashModel);
        slots[1].terms.price = 5e18;
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(slots[1].jobId, 1, SKIP_TERMS_MISMATCH);
        assertEq(_deliver(qp, hashModel, slots, _prove(hashModel, slots)), 0xd);
    }

    /// @dev A late job in a mixed batch: skipped (still expirable by its requester), the others settle.
    function test_deliverBatch_lateJobDoesNotBlockOthers() public {
        Slot memory early = _openJob(hashModel, 1, requester, qp, qpKey, 0.1e18);
        vm.warp(block.timestamp + 20);
        Slot[] memory slots = _fourJobs(hashModel);
        slots[0] = early;
        vm.warp(block.timestamp + 15); // early's due (30 s) has passed, the others' not
        vm.expectEmit(true, false, false, true, address(qm));
        emit IQuoteMarket.BatchJobSkipped(early.jobId, 0, SKIP_LATE);
        assertEq(_deliver(qp, hashModel, slots, _prove(hashModel, slots)), 0xe);
        qm.expire(early.jobId, early.terms);
        assertEq(uint256(_state(early.jobId)), uint256(JobState.Expired));
    }

    /// @dev 5. Batch and single-job entries refuse each other's models.
    function test_deliverBatch_singleModelRefused() public {
        (bytes32 jobId, QuotedJob memory t) = _open(1, qp, qpKey, 0.5e18);
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = jobId;
        QuotedJob[] memory terms = new QuotedJob[](1);
        terms[0] = t;
        uint256[][] memory outs = new uint256[][](1);
        outs[0] = _zkOutput();
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.NotABatchModel.selector, zkOnlyModelId));
        qm.deliverBatch(zkOnlyModelId, ids, terms, outs, "");
    }

    function test_deliver_batchModelRefused() public {
        Slot memory s = _openJob(hashModel, 1, requester, qp, qpKey, 0.1e18);
        vm.prank(qp);
        vm.expectRevert(
            abi.encodeWithSelector(IQuoteMarket.BatchModelNeedsBatch.selector, hashModel, uint8(N))
        );
        qm.deliver(s.jobId, s.terms, s.output, "");
    }

    function test_deliverBatch_shapeMismatch() public {
        Slot[] memory slots = _fourJobs(hashModel);
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(slots);
        bytes32[] memory three = new bytes32[](3);
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.BatchShapeMismatch.selector, 3, N, N, N));
        qm.deliverBatch(hashModel, three, terms, outs, "");
        outs[1] = new uint256[](3);
        bytes memory proof = _prove(hashModel, slots);
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.OutputLengthMismatch.selector, 3, L));
        qm.deliverBatch(hashModel, ids, terms, outs, proof);
    }

    /// @dev 6. Three jobs in a four-slot proof: the padding slot pays nobody.
    function test_deliverBatch_paddingSlots() public {
        bytes32[2] memory models = [polyModel, hashModel];
        for (uint256 m; m < 2; ++m) {
            Slot[] memory slots = _fourJobs(models[m]);
            slots[3] = _padding(models[m], 0);
            uint256 owedBefore = qm.owed(qp);
            assertEq(_deliver(qp, models[m], slots, _prove(models[m], slots)), 0x7);
            assertEq(qm.owed(qp) - owedBefore, 0.6e18);
        }
    }

    /// @dev A short proof (fewer points than slots): the jobs without a point are skipped, the proof fails.
    function test_deliverBatch_shortPolycommitProof() public {
        Slot[] memory slots = _fourJobs(polyModel);
        (bytes32[] memory ids, QuotedJob[] memory terms, uint256[][] memory outs) = _args(slots);
        bytes memory proof = abi.encodePacked(_point(1), _point(2));
        vm.prank(qp);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.BatchProofRejected.selector, polyModel));
        qm.deliverBatch(polyModel, ids, terms, outs, proof);
    }
}
