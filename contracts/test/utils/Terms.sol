// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Vm} from "./Vm.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {TermsLib} from "../../src/libraries/TermsLib.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {AuctionTerms, Bid, Intent, Job, JobState, JobTerms} from "../../src/MarketStructs.sol";

/// @notice A reverse job's terms, as every role rebuilds them: from the intent, the posting time and the market's
/// fee and stake multiple at posting (all in `IntentPosted`).
library TermsBuilder {
    function build(Intent memory intent, uint256 postedAt, uint16 feeBps, uint16 stakeMultiple)
        internal
        pure
        returns (AuctionTerms memory t, JobTerms memory j)
    {
        j = JobTerms(
            intent.requester,
            intent.modelId,
            intent.inputCommitment,
            uint40(postedAt),
            feeBps,
            intent.proofMode,
            intent.allowFailover,
            intent.callbackGasLimit
        );
        t = AuctionTerms(
            uint96(intent.maxPrice),
            uint96(intent.minStake),
            uint40(postedAt + intent.auctionWindow),
            uint40(intent.deadline),
            intent.priceWeightBps,
            stakeMultiple,
            TermsLib.hash(j)
        );
    }
}

/// @notice Remembers the terms of every job posted while logs are recorded (`_deployCore` starts recording),
/// read back from `IntentPosted`: tests bid, award and refund with `_terms(jobId)` / `_jobTerms(jobId)`. A test
/// that reads recorded logs itself uses `_recordedLogs()` and `_recordLogs()`, which keep the terms.
abstract contract TermsRecorder {
    Vm private constant _VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    mapping(bytes32 jobId => AuctionTerms) private _auctionTermsOf;
    mapping(bytes32 jobId => JobTerms) private _jobTermsOf;

    function _terms(bytes32 jobId) internal returns (AuctionTerms memory) {
        _scan(_VM.getRecordedLogs());
        return _auctionTermsOf[jobId];
    }

    function _jobTerms(bytes32 jobId) internal returns (JobTerms memory) {
        _scan(_VM.getRecordedLogs());
        return _jobTermsOf[jobId];
    }

    /// @dev The record of job `jobId` as its posted terms give it: what `job()` shows of an Open Dutch job, and of
    /// a reverse job once awarded (less the award). An Open reverse job's `job()` shows only its state.
    function _postedJob(bytes32 jobId) internal returns (Job memory v) {
        AuctionTerms memory t = _terms(jobId);
        JobTerms memory j = _jobTerms(jobId);
        v.state = JobState.Open;
        (v.requester, v.proofMode, v.allowFailover, v.feeBps, v.callbackGasLimit) =
        (j.requester, j.proofMode, j.allowFailover, j.feeBps, j.callbackGasLimit);
        (v.modelId, v.inputCommitment, v.postedAt) = (j.modelId, j.inputCommitment, j.postedAt);
        (v.maxPrice, v.minStake, v.auctionEnd, v.deadline) =
        (t.maxPrice, t.minStake, t.auctionEnd, t.deadline);
        (v.priceWeightBps, v.stakeMultiple) = (t.priceWeightBps, t.stakeMultiple);
    }

    /// @dev `caller` places bid `b` on reverse job `jobId` of `m` with its posted terms (read before the prank).
    function _bidOn(IReverseAuctionMarket m, bytes32 jobId, address caller, Bid memory b) internal {
        AuctionTerms memory t = _terms(jobId);
        _VM.prank(caller);
        m.bid(jobId, t, b);
    }

    /// @dev Awards reverse job `jobId` of `m` with its posted terms.
    function _awardOn(IReverseAuctionMarket m, bytes32 jobId) internal {
        (AuctionTerms memory t, JobTerms memory j) = (_terms(jobId), _jobTerms(jobId));
        m.award(jobId, t, j);
    }

    /// @dev Refunds reverse job `jobId` of `m` with its posted terms.
    function _refundOn(IReverseAuctionMarket m, bytes32 jobId) internal {
        (AuctionTerms memory t, JobTerms memory j) = (_terms(jobId), _jobTerms(jobId));
        m.refund(jobId, t, j);
    }

    /// @dev `vm.getRecordedLogs()`, remembering the terms of the jobs posted in them.
    function _recordedLogs() internal returns (Vm.Log[] memory logs) {
        logs = _VM.getRecordedLogs();
        _scan(logs);
    }

    /// @dev `vm.recordLogs()` (which drops what was recorded), remembering the terms posted so far first.
    function _recordLogs() internal {
        _scan(_VM.getRecordedLogs());
        _VM.recordLogs();
    }

    function _scan(Vm.Log[] memory logs) private {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.topics.length == 0 || log.topics[0] != IMarketEvents.IntentPosted.selector) continue;
            (Intent memory intent,, uint16 feeBps, uint16 stakeMultiple, uint40 auctionEnd,) =
                abi.decode(log.data, (Intent, uint256, uint16, uint16, uint40, address));
            (AuctionTerms memory t, JobTerms memory j) =
                TermsBuilder.build(intent, auctionEnd - intent.auctionWindow, feeBps, stakeMultiple);
            _auctionTermsOf[log.topics[1]] = t;
            _jobTermsOf[log.topics[1]] = j;
        }
    }
}
