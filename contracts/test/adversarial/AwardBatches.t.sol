// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {QuoteFixture} from "../utils/QuoteFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {MockERC1271Wallet} from "../mocks/MockERC1271Wallet.sol";
import {
    AWARD_SKIP_ESCROW,
    AWARD_SKIP_LATE,
    AWARD_SKIP_NONCE,
    AWARD_SKIP_SIGNATURE,
    AWARD_SKIP_STAKE,
    IQuoteMarket,
    Quote,
    QuotedJob
} from "../../src/interfaces/IQuoteMarket.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {Intent, JobState} from "../../src/MarketStructs.sol";

/// @notice The exploits feared for `openAwardedBatch` (N signed-quote awards in one transaction): the same intent
/// twice in one batch, one quote reused for two jobs, a requester's escrow counted once for two entries (its
/// credit or allowance covering one), a provider's stake promised to more entries than it can hold, a relayer
/// batch a requester or provider spoils after it was built (nonce cancelled, solver deauthorised, quote expired,
/// allowance revoked), a forged acceptance. Each awarded entry is exactly what `openAwarded` records; a skipped
/// one leaves nothing behind; a failing entry never blocks the others.
contract AwardBatchesTest is QuoteFixture {
    using IntentBuilder for Intent;

    address internal requester2;
    uint256 internal requester2Key;

    struct Entry {
        Intent intent;
        Quote quote;
        bytes sig;
        bytes acceptance;
    }

    function setUp() public {
        _deployQuote();
        (requester2, requester2Key) = makeKey("requester-2");
        token.mint(requester2, FUNDS);
        vm.prank(requester2);
        token.approve(address(qm), type(uint256).max);
    }

    // ------------------------------------------------------------------ helpers

    function _entry(address who, uint256 nonce, address provider_, uint256 key, uint256 price)
        internal
        view
        returns (Entry memory e)
    {
        e.intent = _qIntent(nonce).withRequester(who);
        e.quote = _quote(qm.hashIntent(e.intent), provider_, price);
        e.sig = _sign(qm, e.quote, key);
    }

    /// @dev `e` carried by a relayer: the requester's acceptance of its quote.
    function _accepted(Entry memory e, uint256 requesterKey_) internal view returns (Entry memory) {
        e.acceptance = _sign(qm, e.quote, requesterKey_);
        return e;
    }

    function _send(address caller, Entry[] memory es) internal returns (uint256 awarded) {
        (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs, bytes[] memory accepts) =
            _args(es);
        vm.prank(caller);
        awarded = qm.openAwardedBatch(intents, quotes, sigs, accepts);
    }

    function _args(Entry[] memory es)
        internal
        pure
        returns (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs, bytes[] memory accepts)
    {
        uint256 n = es.length;
        (intents, quotes, sigs, accepts) = (new Intent[](n), new Quote[](n), new bytes[](n), new bytes[](n));
        for (uint256 i; i < n; ++i) {
            (intents[i], quotes[i], sigs[i], accepts[i]) =
            (es[i].intent, es[i].quote, es[i].sig, es[i].acceptance);
        }
    }

    function _expectRevert(address caller, Entry[] memory es, bytes memory err) internal {
        (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs, bytes[] memory accepts) =
            _args(es);
        vm.expectRevert(err);
        vm.prank(caller);
        qm.openAwardedBatch(intents, quotes, sigs, accepts);
    }

    function _state(Intent memory intent) internal view returns (JobState st) {
        (st,) = qm.jobState(qm.hashIntent(intent));
    }

    function _assertAwarded(Entry memory e) internal view {
        (JobState st, bytes32 word) = qm.jobState(qm.hashIntent(e.intent));
        assertEq(uint256(st), uint256(JobState.Awarded));
        assertEq(
            uint256(word) >> 8, uint256(qm.hashTerms(_terms(e.intent, e.quote))) >> 8, "openAwarded's terms"
        );
        assertTrue(qm.isNonceUsed(e.intent.requester, e.intent.nonce));
    }

    function _assertNotOpened(Entry memory e) internal view {
        assertEq(uint256(_state(e.intent)), uint256(JobState.None));
    }

    // ------------------------------------------------------------------ the path that works

    function test_openAwardedBatch_awardsEachAsOpenAwardedAndChargesEachRequesterOnce() public {
        Entry[] memory es = new Entry[](4);
        es[0] = _accepted(_entry(requester, 1, qp, qpKey, 0.1e18), requesterKey);
        es[1] = _accepted(_entry(requester2, 1, qp2, qp2Key, 0.2e18), requester2Key);
        es[2] = _accepted(_entry(requester, 2, qp, qSolverKey, 0.3e18), requesterKey);
        es[3] = _accepted(_entry(requester2, 2, qp, qpKey, 0.4e18), requester2Key);
        (uint256 b1, uint256 b2) = (token.balanceOf(requester), token.balanceOf(requester2));
        uint64 wonBefore = staking.stats(qp).jobsWon;
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.QuoteAwarded(
            qm.hashIntent(es[0].intent), requester, qp, _terms(es[0].intent, es[0].quote), 30, stranger
        );
        assertEq(_send(stranger, es), 0xf);
        for (uint256 i; i < 4; ++i) {
            _assertAwarded(es[i]);
        }
        assertEq(b1 - token.balanceOf(requester), qm.escrowFor(0.1e18) + qm.escrowFor(0.3e18));
        assertEq(b2 - token.balanceOf(requester2), qm.escrowFor(0.2e18) + qm.escrowFor(0.4e18));
        assertEq(staking.lockedOf(qp), 2 * (0.1e18 + 0.3e18 + 0.4e18), "each job's own hold");
        assertEq(staking.lockedOf(qp2), 2 * 0.2e18);
        assertEq(staking.stats(qp).jobsWon - wonBefore, 3, "one award counted per job");
    }

    function test_openAwardedBatch_withoutAcceptances_theSenderIsEveryRequester() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 3, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 4, qp2, qp2Key, 0.25e18);
        (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs,) = _args(es);
        vm.prank(requester);
        assertEq(qm.openAwardedBatch(intents, quotes, sigs, new bytes[](0)), 0x3);
        _assertAwarded(es[0]);
        _assertAwarded(es[1]);
        // another requester's entry without its acceptance: refused as by openAwarded
        es[0] = _entry(requester2, 5, qp, qpKey, 0.5e18);
        (intents, quotes, sigs,) = _args(es);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotRequester.selector, requester, requester2));
        vm.prank(requester);
        qm.openAwardedBatch(intents, quotes, sigs, new bytes[](0));
    }

    function test_openAwardedBatch_jobsSettleAndExpireAsSingleAwards() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 1, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 2, qp, qpKey, 0.25e18);
        _send(requester, es);
        QuotedJob memory t0 = _terms(es[0].intent, es[0].quote);
        QuotedJob memory t1 = _terms(es[1].intent, es[1].quote);
        uint256[] memory out = _zkOutput();
        vm.prank(qp);
        qm.deliver(es[0].quote.jobId, t0, out, _proof(t0.inputCommitment, out));
        vm.warp(t1.due + 1);
        qm.expire(es[1].quote.jobId, t1);
        assertEq(qm.owed(qp), 0.5e18);
        assertEq(qm.owed(requester), qm.escrowFor(0.25e18), "the expired job's escrow back");
        assertEq(staking.lockedOf(qp), 0);
    }

    function test_openAwardedBatch_creditCoversTheWholeBatchOrNothingOfIt() public {
        // a refund leaves the requester a credit of one escrow at 0.25
        Entry[] memory one = new Entry[](1);
        one[0] = _entry(requester, 1, qp, qpKey, 0.25e18);
        QuotedJob memory t = _terms(one[0].intent, one[0].quote);
        _send(requester, one);
        vm.warp(block.timestamp + 31);
        qm.expire(one[0].quote.jobId, t);
        uint256 credit = qm.owed(requester);
        assertEq(credit, qm.escrowFor(0.25e18));
        // two entries at 0.125: their total is the credit, which pays it (no transfer)
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 2, qp, qpKey, 0.125e18);
        es[1] = _entry(requester, 3, qp, qpKey, 0.125e18);
        uint256 balance = token.balanceOf(requester);
        assertEq(_send(requester, es), 3);
        assertEq(qm.owed(requester), 0);
        assertEq(token.balanceOf(requester), balance);
    }

    // ------------------------------------------------------------------ exploits

    function test_duplicateIntent_opensOnceChargesOnceHoldsOnce() public {
        Entry[] memory es = new Entry[](3);
        es[0] = _entry(requester, 7, qp, qpKey, 0.5e18);
        es[1] = es[0];
        es[2] = _entry(requester, 8, qp, qpKey, 0.5e18);
        uint256 balance = token.balanceOf(requester);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[1].quote.jobId, 1, AWARD_SKIP_NONCE);
        assertEq(_send(requester, es), 0x5);
        assertEq(balance - token.balanceOf(requester), 2 * qm.escrowFor(0.5e18));
        assertEq(staking.lockedOf(qp), 2 * 1e18);
    }

    function test_duplicateIntentWithAnotherQuote_opensOnce() public {
        // the same job twice, quoted by two providers: only the first entry's award stands
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 9, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 9, qp2, qp2Key, 0.4e18); // a copy of es[0]'s intent
        es[1].quote = _quote(es[0].quote.jobId, qp2, 0.4e18);
        es[1].sig = _sign(qm, es[1].quote, qp2Key);
        assertEq(_send(requester, es), 0x1);
        _assertAwarded(es[0]);
        assertEq(staking.lockedOf(qp2), 0);
    }

    function test_quoteReusedForAnotherJob_reverts() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 10, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 11, qp, qpKey, 0.5e18);
        (es[1].quote, es[1].sig) = (es[0].quote, es[0].sig); // es[0]'s signed quote on another intent
        bytes32 other = qm.hashIntent(es[1].intent);
        _expectRevert(
            requester,
            es,
            abi.encodeWithSelector(IQuoteMarket.QuoteForOtherJob.selector, es[0].quote.jobId, other)
        );
        _assertNotOpened(es[0]);
        assertFalse(qm.isNonceUsed(requester, 10));
    }

    function test_alreadyOpenedIntent_skipped() public {
        (bytes32 jobId,) = _open(12, qp, qpKey, 0.5e18);
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 12, qp, qpKey, 0.5e18);
        assertEq(es[0].quote.jobId, jobId);
        es[1] = _entry(requester, 13, qp, qpKey, 0.5e18);
        uint256 balance = token.balanceOf(requester);
        assertEq(_send(requester, es), 0x2);
        assertEq(balance - token.balanceOf(requester), qm.escrowFor(0.5e18));
    }

    function test_escrowNotDoubleCounted_allowanceCoversOneEntry() public {
        // the requester's allowance covers one entry's escrow, not two: the second is skipped, one is pulled
        uint256 allowance = qm.escrowFor(0.5e18) + 1;
        vm.prank(requester2);
        token.approve(address(qm), allowance);
        Entry[] memory es = new Entry[](3);
        es[0] = _accepted(_entry(requester2, 1, qp, qpKey, 0.5e18), requester2Key);
        es[1] = _accepted(_entry(requester2, 2, qp, qpKey, 0.5e18), requester2Key);
        es[2] = _accepted(_entry(requester, 1, qp, qpKey, 0.5e18), requesterKey);
        uint256 balance = token.balanceOf(requester2);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[1].quote.jobId, 1, AWARD_SKIP_ESCROW);
        assertEq(_send(stranger, es), 0x5);
        assertEq(balance - token.balanceOf(requester2), qm.escrowFor(0.5e18));
        assertFalse(qm.isNonceUsed(requester2, 2), "a skipped entry keeps its nonce");
        assertEq(staking.lockedOf(qp), 2 * 1e18, "no hold for the skipped entry");
    }

    function test_escrowNotDoubleCounted_balanceCoversOneEntry() public {
        // unlimited allowance, but the balance covers one escrow only
        uint256 keep = qm.escrowFor(0.5e18) + 0.1e18;
        vm.startPrank(requester2);
        token.transfer(address(0xdead), token.balanceOf(requester2) - keep);
        vm.stopPrank();
        Entry[] memory es = new Entry[](2);
        es[0] = _accepted(_entry(requester2, 3, qp, qpKey, 0.5e18), requester2Key);
        es[1] = _accepted(_entry(requester2, 4, qp, qpKey, 0.5e18), requester2Key);
        assertEq(_send(stranger, es), 0x1);
        assertEq(token.balanceOf(requester2), 0.1e18);
    }

    function test_escrowNotDoubleCounted_creditCoversOneEntryNoAllowance() public {
        // a credit of one escrow and no allowance: one entry is paid from the credit, the other skipped
        Entry[] memory one = new Entry[](1);
        one[0] = _entry(requester, 1, qp, qpKey, 0.5e18);
        QuotedJob memory t = _terms(one[0].intent, one[0].quote);
        _send(requester, one);
        vm.warp(block.timestamp + 31);
        qm.expire(one[0].quote.jobId, t);
        vm.prank(requester);
        token.approve(address(qm), 0);
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 2, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 3, qp, qpKey, 0.5e18);
        assertEq(_send(requester, es), 0x1);
        assertEq(qm.owed(requester), 0);
    }

    function test_stakeNotOverCommitted_acrossTheBatch() public {
        // qp2 can hold 100e18: three entries holding 40e18 each fit twice
        Entry[] memory es = new Entry[](3);
        for (uint256 i; i < 3; ++i) {
            es[i] = _entry(requester, 20 + i, qp2, qp2Key, 0.5e18);
            es[i].intent.minStake = 40e18;
            es[i].quote = _quote(qm.hashIntent(es[i].intent), qp2, 0.5e18);
            es[i].sig = _sign(qm, es[i].quote, qp2Key);
        }
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[2].quote.jobId, 2, AWARD_SKIP_STAKE);
        assertEq(_send(requester, es), 0x3);
        assertEq(staking.lockedOf(qp2), 80e18);
        assertLe(staking.lockedOf(qp2), staking.stakeOf(qp2));
    }

    function test_stakeNotOverCommitted_unstakingStakeCountsOnce() public {
        // 60e18 of qp2's stake is unstaking: an award takes it back (lockableOf), but only once
        vm.prank(qp2);
        staking.unstake(60e18);
        Entry[] memory es = new Entry[](3);
        for (uint256 i; i < 3; ++i) {
            es[i] = _entry(requester, 30 + i, qp2, qp2Key, 0.5e18);
            es[i].intent.minStake = 45e18;
            es[i].quote = _quote(qm.hashIntent(es[i].intent), qp2, 0.5e18);
            es[i].sig = _sign(qm, es[i].quote, qp2Key);
        }
        assertEq(_send(requester, es), 0x3);
        assertEq(staking.lockedOf(qp2), 90e18);
        (uint256 unstaking,) = staking.unstakingOf(qp2);
        assertEq(unstaking, 10e18);
    }

    function test_strangerWithoutAcceptance_reverts() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _accepted(_entry(requester, 40, qp, qpKey, 0.5e18), requesterKey);
        es[1] = _entry(requester2, 40, qp, qpKey, 0.5e18);
        _expectRevert(qp, es, abi.encodeWithSelector(IMarketEvents.NotRequester.selector, qp, requester2));
        _assertNotOpened(es[0]);
    }

    function test_forgedAcceptance_skipped() public {
        // the relayer swaps a dearer quote under requester2's acceptance of a cheap one
        Entry[] memory es = new Entry[](2);
        es[0] = _accepted(_entry(requester, 41, qp, qpKey, 0.5e18), requesterKey);
        es[1] = _accepted(_entry(requester2, 41, qp, qpKey, 0.1e18), requester2Key);
        es[1].quote.price = 0.9e18;
        es[1].sig = _sign(qm, es[1].quote, qpKey);
        uint256 balance = token.balanceOf(requester2);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[1].quote.jobId, 1, AWARD_SKIP_SIGNATURE);
        assertEq(_send(qp, es), 0x1);
        assertEq(token.balanceOf(requester2), balance);
    }

    function test_forgedQuote_skipped() public {
        (, uint256 forgerKey) = makeKey("forger");
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 42, qp, forgerKey, 0.5e18);
        es[1] = _entry(requester, 43, qp2, qp2Key, 0.5e18);
        assertEq(_send(requester, es), 0x2);
        _assertNotOpened(es[0]);
        assertEq(staking.lockedOf(qp), 0);
    }

    function test_spoiledAfterBuilding_onlyTheSpoiledEntriesSkipped() public {
        // a relayer builds a batch of four; before it lands, requester2 cancels its nonce, qp deauthorises its
        // solver, and a quote expires
        Entry[] memory es = new Entry[](4);
        es[0] = _accepted(_entry(requester, 50, qp, qpKey, 0.5e18), requesterKey);
        es[1] = _accepted(_entry(requester2, 50, qp2, qp2Key, 0.5e18), requester2Key);
        es[2] = _accepted(_entry(requester, 51, qp, qSolverKey, 0.5e18), requesterKey);
        es[3] = _accepted(_entry(requester, 52, qp2, qp2Key, 0.5e18), requesterKey);
        es[3].quote.expiry = uint64(block.timestamp + 1);
        es[3].sig = _sign(qm, es[3].quote, qp2Key);
        es[3].acceptance = _sign(qm, es[3].quote, requesterKey);
        vm.prank(requester2);
        qm.invalidateNonces(0, 1 << 50);
        vm.prank(qp);
        staking.setSolver(qSolver, false);
        vm.warp(block.timestamp + 1);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[1].quote.jobId, 1, AWARD_SKIP_NONCE);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[2].quote.jobId, 2, AWARD_SKIP_SIGNATURE);
        vm.expectEmit(true, true, true, true, address(qm));
        emit IQuoteMarket.BatchAwardSkipped(es[3].quote.jobId, 3, AWARD_SKIP_LATE);
        assertEq(_send(stranger, es), 0x1);
        _assertAwarded(es[0]);
        assertEq(staking.lockedOf(qp), 1e18);
        assertEq(staking.lockedOf(qp2), 0);
    }

    function test_contractRequesterWithdrawsItsAcceptance_skipped() public {
        // an ERC-1271 requester that no longer agrees (its owner changed its mind) skips, the rest opens
        (address walletOwner, uint256 walletKey) = makeKey("wallet-owner");
        MockERC1271Wallet wallet = new MockERC1271Wallet(walletOwner);
        token.mint(address(wallet), FUNDS);
        vm.prank(address(wallet));
        token.approve(address(qm), type(uint256).max);
        Entry[] memory es = new Entry[](2);
        es[0] = _accepted(_entry(address(wallet), 1, qp, qpKey, 0.5e18), walletKey);
        es[1] = _accepted(_entry(requester, 60, qp, qpKey, 0.5e18), requesterKey);
        (, uint256 otherKey) = makeKey("not-the-owner");
        es[0].acceptance = _sign(qm, es[0].quote, otherKey);
        assertEq(_send(stranger, es), 0x2);
        assertEq(token.balanceOf(address(wallet)), FUNDS);
    }

    function test_allSkipped_revertsNothingAwarded() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 70, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 71, qp, qpKey, 0.5e18);
        vm.warp(block.timestamp + 11); // both quotes expired
        _expectRevert(requester, es, abi.encodeWithSelector(IQuoteMarket.NothingAwarded.selector));
        _expectRevert(requester, new Entry[](0), abi.encodeWithSelector(IQuoteMarket.NothingAwarded.selector));
    }

    function test_malformedCalls_revert() public {
        Entry[] memory es = new Entry[](2);
        es[0] = _entry(requester, 80, qp, qpKey, 0.5e18);
        es[1] = _entry(requester, 81, qp, qpKey, 0.5e18);
        (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs,) = _args(es);
        vm.expectRevert(abi.encodeWithSelector(IQuoteMarket.AwardBatchShapeMismatch.selector, 2, 2, 2, 1));
        vm.prank(requester);
        qm.openAwardedBatch(intents, quotes, sigs, new bytes[](1));
        // a wrong auction type in one entry is the submitter's to check: the batch reverts with openAwarded's error
        es[1].intent.auctionType = 0;
        es[1].quote = _quote(qm.hashIntent(es[1].intent), qp, 0.5e18);
        es[1].sig = _sign(qm, es[1].quote, qpKey);
        _expectRevert(requester, es, abi.encodeWithSelector(IMarketEvents.WrongAuctionType.selector, 0, 2));
        _assertNotOpened(es[0]);
        Entry[] memory big = new Entry[](257);
        _expectRevert(
            requester, big, abi.encodeWithSelector(IQuoteMarket.AwardBatchTooLarge.selector, 257, 256)
        );
    }

    function test_whilePaused_reverts() public {
        vm.prank(owner);
        qm.pause();
        Entry[] memory es = new Entry[](1);
        es[0] = _entry(requester, 90, qp, qpKey, 0.5e18);
        (Intent[] memory intents, Quote[] memory quotes, bytes[] memory sigs, bytes[] memory accepts) =
            _args(es);
        vm.expectRevert();
        vm.prank(requester);
        qm.openAwardedBatch(intents, quotes, sigs, accepts);
    }

    /// @notice Any mix of fresh, duplicated, forged, expired and over-staked entries: the requester pays exactly the
    /// escrow of the awarded entries, each provider holds exactly their stakes, and each skipped entry is untouched.
    function testFuzz_openAwardedBatch_chargesAndHoldsExactlyTheAwarded(uint256 seed) public {
        uint256 n = bound(seed, 1, 8);
        Entry[] memory es = new Entry[](n);
        (, uint256 forgerKey) = makeKey("forger");
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            if (i > 0 && r % 7 == 0) {
                es[i] = es[r % i]; // a duplicate of an earlier entry (the same memory: never modified after)
                continue;
            }
            bool second = r % 3 == 0;
            es[i] = _entry(
                requester, 100 + i, second ? qp2 : qp, second ? qp2Key : qpKey, bound(r >> 8, 1, 1e18)
            );
            es[i].intent.minStake = (r >> 80) % 4 == 0 ? 45e18 : 0;
            es[i].quote.jobId = qm.hashIntent(es[i].intent);
            es[i].sig = _sign(qm, es[i].quote, (r >> 100) % 9 == 0 ? forgerKey : second ? qp2Key : qpKey);
        }
        uint256 balance = token.balanceOf(requester);
        uint256 awarded;
        try this.sendAs(requester, es) returns (uint256 a) {
            awarded = a;
        } catch (bytes memory err) {
            assertEq(bytes4(err), IQuoteMarket.NothingAwarded.selector);
        }
        uint256 paid;
        uint256[2] memory held;
        for (uint256 i; i < n; ++i) {
            if (awarded & (1 << i) == 0) continue;
            _assertAwarded(es[i]);
            paid += qm.escrowFor(es[i].quote.price);
            held[es[i].quote.provider == qp ? 0 : 1] += _terms(es[i].intent, es[i].quote).stakeLocked;
        }
        assertEq(balance - token.balanceOf(requester), paid);
        assertEq(staking.lockedOf(qp), held[0]);
        assertEq(staking.lockedOf(qp2), held[1]);
        assertLe(staking.lockedOf(qp), staking.stakeOf(qp));
        assertLe(staking.lockedOf(qp2), staking.stakeOf(qp2));
    }

    function sendAs(address caller, Entry[] memory es) external returns (uint256) {
        return _send(caller, es);
    }
}
