// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {QuoteHandler} from "./handlers/QuoteHandler.sol";
import {QuotedJob} from "../../src/interfaces/IQuoteMarket.sol";
import {ModelInfo} from "../../src/interfaces/IModelRegistry.sol";
import {MockBatchVerifier} from "../mocks/MockBatchVerifier.sol";
import {JobState} from "../../src/MarketStructs.sol";

/// @notice Invariants of the quote market under `QuoteHandler`: a job is awarded at most once (alone or in a batch,
/// duplicated in one or replayed across batches) and only from a quote its provider (or its solver) signed; a provider is penalised by a result commitment only when the
/// output it proved differs from the one it committed to; tokens are conserved; Staking's locks are exactly
/// the awarded jobs' stakes.
/// forge-config: default.invariant.runs = 24
/// forge-config: default.invariant.depth = 96
/// forge-config: deep.invariant.runs = 512
/// forge-config: deep.invariant.depth = 128
contract QuoteInvariantsTest is QuoteFixture {
    QuoteHandler internal handler;

    function setUp() public {
        _deployQuote();
        ModelInfo memory batch = _modelInfo(1, 0);
        batch.verifier = address(new MockBatchVerifier(0));
        (
            batch.commitmentIndex,
            batch.outputOffset,
            batch.outputLength,
            batch.instanceCount,
            batch.batchSize
        ) = (0, 2, 2, 6, 2);
        bytes32 batchModelId = registry.register(batch);
        handler = new QuoteHandler(
            QuoteHandler.Deps({
                token: token,
                staking: staking,
                market: qm,
                requester: requester,
                requesterKey: requesterKey,
                providers: [qp, qp2],
                providerKeys: [qpKey, qp2Key],
                solverKey: qSolverKey,
                modelId: zkOnlyModelId,
                batchModelId: batchModelId
            })
        );
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = QuoteHandler.open.selector;
        selectors[1] = QuoteHandler.replay.selector;
        selectors[2] = QuoteHandler.deliver.selector;
        selectors[3] = QuoteHandler.expire.selector;
        selectors[4] = QuoteHandler.slash.selector;
        selectors[5] = QuoteHandler.withdraw.selector;
        selectors[6] = QuoteHandler.warp.selector;
        selectors[7] = QuoteHandler.deliverBatch.selector;
        selectors[8] = QuoteHandler.openBatch.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function invariant_awardedAtMostOnce() public view {
        assertLe(handler.maxAwards(), 1);
        assertEq(handler.forgedAwards(), 0, "an award from a quote its provider never signed");
    }

    /// @notice A job settles at most once, alone or in a batch (in two slots of one batch, or in two batches).
    function invariant_settledAtMostOnce() public view {
        assertLe(handler.maxSettles(), 1);
    }

    /// @notice A batch credits its provider exactly the prices of the jobs it settled, each from its own terms.
    function invariant_batchPaysOwnSlotsOnly() public view {
        assertEq(handler.batchPayMismatches(), 0);
    }

    function invariant_onlyDishonestProvidersSlashed() public view {
        assertEq(handler.honestSlashes(), 0);
    }

    /// @notice The market holds the escrow of awarded jobs, the fees and what it owes, and nothing else.
    function invariant_tokenConservation() public view {
        uint256 owedTotal = qm.owed(requester) + qm.owed(qp) + qm.owed(qp2);
        assertEq(token.balanceOf(address(qm)), handler.escrowHeld() + qm.feesOwed() + owedTotal);
    }

    /// @notice Staking holds for a provider exactly the stakes of its jobs still awarded (each job's amount is in
    /// its terms; Staking keeps no per-job lock for a quoted job), and never stake it does not have.
    function invariant_locksMatchAwardedJobs() public view {
        uint256[2] memory locked;
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            (JobState st,) = qm.jobState(id);
            QuotedJob memory t = handler.termsOf(id);
            assertEq(staking.lockedFor(t.provider, id), 0, "no per-job lock slot");
            if (st == JobState.Awarded) locked[t.provider == qp ? 0 : 1] += t.stakeLocked;
        }
        assertLe(staking.lockedOf(qp), staking.stakeOf(qp));
        assertLe(staking.lockedOf(qp2), staking.stakeOf(qp2));
        assertEq(staking.lockedOf(qp), locked[0]);
        assertEq(staking.lockedOf(qp2), locked[1]);
    }
}
