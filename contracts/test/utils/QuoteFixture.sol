// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TenderFixture} from "./TenderFixture.sol";
import {IntentBuilder} from "./IntentBuilder.sol";
import {QuoteMarket} from "../../src/QuoteMarket.sol";
import {Quote, QuotedJob} from "../../src/interfaces/IQuoteMarket.sol";
import {AUCTION_QUOTE, Intent} from "../../src/MarketStructs.sol";

/// @notice A QuoteMarket over the shared fixture, two providers with keys (one signs through a solver key),
/// and helpers that sign quotes, acceptances and result commitments.
abstract contract QuoteFixture is TenderFixture {
    using IntentBuilder for Intent;

    QuoteMarket internal qm;
    address internal qp;
    uint256 internal qpKey;
    address internal qp2;
    uint256 internal qp2Key;
    address internal qSolver;
    uint256 internal qSolverKey;

    function _deployQuote() internal {
        _deployCore();
        qm = new QuoteMarket(token, registry, staking, treasury, owner, _defaultParams());
        vm.prank(owner);
        staking.setMarket(address(qm), true);
        _activate(staking, address(qm));
        (qp, qpKey) = makeKey("quote-provider");
        (qp2, qp2Key) = makeKey("quote-provider-2");
        (qSolver, qSolverKey) = makeKey("quote-solver");
        address[2] memory ps = [qp, qp2];
        for (uint256 i; i < ps.length; ++i) {
            token.mint(ps[i], FUNDS);
            vm.startPrank(ps[i]);
            token.approve(address(staking), type(uint256).max);
            staking.stake(STAKE);
            vm.stopPrank();
        }
        vm.prank(qp);
        staking.setSolver(qSolver, true);
        vm.prank(requester);
        token.approve(address(qm), type(uint256).max);
    }

    function _qIntent(uint256 nonce) internal view returns (Intent memory) {
        return IntentBuilder.init(requester, zkOnlyModelId).withAuctionType(AUCTION_QUOTE).withNonce(nonce);
    }

    function _quote(bytes32 jobId, address provider_, uint256 price) internal view returns (Quote memory) {
        return Quote({
            jobId: jobId, provider: provider_, price: price, latency: 30, expiry: uint64(block.timestamp + 10)
        });
    }

    function _sign(QuoteMarket m, Quote memory q, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, m.hashQuote(q));
        return abi.encodePacked(r, s, v);
    }

    function _signCommitment(QuoteMarket m, bytes32 jobId, bytes32 outputHash, uint256 key)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, m.hashCommitment(jobId, outputHash));
        return abi.encodePacked(r, s, v);
    }

    /// @dev The terms `openAwarded` records for `q` on `intent` now.
    function _terms(Intent memory intent, Quote memory q) internal view returns (QuotedJob memory t) {
        uint256 stake = q.price * qm.params().stakeMultiple;
        if (stake < intent.minStake) stake = intent.minStake;
        uint256 due = block.timestamp + q.latency;
        if (due > intent.deadline) due = intent.deadline;
        t = QuotedJob({
            requester: intent.requester,
            provider: q.provider,
            modelId: intent.modelId,
            inputCommitment: intent.inputCommitment,
            price: uint96(q.price),
            stakeLocked: uint96(stake),
            awardedAt: uint40(block.timestamp),
            due: uint40(due),
            feeBps: qm.params().feeBps,
            layout: _layoutWord(intent.modelId)
        });
    }

    /// @dev Opens and awards `nonce`'s intent to `provider_` (signing with `key`) at `price`, as the requester.
    function _open(uint256 nonce, address provider_, uint256 key, uint256 price)
        internal
        returns (bytes32 jobId, QuotedJob memory t)
    {
        Intent memory intent = _qIntent(nonce);
        jobId = qm.hashIntent(intent);
        Quote memory q = _quote(jobId, provider_, price);
        t = _terms(intent, q);
        bytes memory sig = _sign(qm, q, key);
        vm.prank(requester);
        qm.openAwarded(intent, q, sig, "");
    }

    function _layoutWord(bytes32 modelId) internal view returns (uint256 word) {
        (word,) = registry.recordWordAndModesOf(modelId);
    }

    function _zkOutput() internal pure returns (uint256[] memory out) {
        out = new uint256[](2);
        out[0] = 7;
        out[1] = 11;
    }
}
