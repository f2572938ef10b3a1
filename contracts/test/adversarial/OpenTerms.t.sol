// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReverseBookBase} from "./ReverseBookBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {IMarketEvents} from "../../src/interfaces/IMarket.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {ModelInfo} from "../../src/interfaces/IModelRegistry.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {
    AuctionTerms,
    Bid,
    Intent,
    Job,
    JobState,
    JobTerms,
    MarketParams,
    PROOF_OPTIMISTIC,
    PROOF_ZK
} from "../../src/MarketStructs.sol";

/// @notice An Open reverse job is one word of storage: the hash of its terms (`AuctionTerms`, which carry the
/// hash of its `JobTerms`) beside its state (`TermsLib`). `bid`, `award`, `refund` and `clearingPrice` take the
/// terms back as calldata; everyone rebuilds them from `IntentPosted`. Attacked:
/// - terms that are not the posted ones: every field of `AuctionTerms` (a higher price cap, a lower stake, a
///   longer window or deadline, another weight or stake multiple, other job terms) and of `JobTerms` (another
///   requester to redirect the escrow, another model, input, fee, posting time, failover flag, callback gas or
///   proof mode), another job's terms, and terms sent with dirty padding: each refused (`TermsMismatch`), with
///   no book, stake, escrow or credit moved;
/// - the terms replayed once the job left Open (`InvalidState`, as before);
/// - the record the award and the refund write: exactly the posted terms (and `job()` of an Open job shows its
///   state alone);
/// - a delivery before the award (no longer an implicit award: refused);
/// - the pause flag, kept in the top bit of the params slot: it must never leak into the params, nor a params
///   change unpause the market;
/// - the market's copy of a model's proof modes, taken at its first posting: an unknown model is still refused,
///   a miss is not remembered, and the copy keeps the modes.
contract OpenTermsTest is ReverseBookBase {
    using IntentBuilder for Intent;

    /// @dev The market's storage (ERC-7201 `tender.market`); its params are the second slot (after the treasury
    /// and fees owed).
    bytes32 internal constant MARKET_STORAGE =
        keccak256(abi.encode(uint256(keccak256("tender.market")) - 1)) & ~bytes32(uint256(0xff));
    /// @dev The fields of `AuctionTerms` and of `JobTerms`.
    uint256 internal constant AUCTION_FIELDS = 7;
    uint256 internal constant JOB_FIELDS = 8;

    /// @dev A reverse intent whose terms differ from the zero value in every field the record holds.
    function _intent() internal view returns (Intent memory) {
        return IntentBuilder.init(requester, modelId).withMinStake(50e18).withPriceWeight(7000)
            .withFailover(true).withCallbackGas(100_000);
    }

    /// @dev A copy of `t` (memory structs alias on assignment).
    function _copy(AuctionTerms memory t) internal pure returns (AuctionTerms memory) {
        return AuctionTerms(
            t.maxPrice, t.minStake, t.auctionEnd, t.deadline, t.priceWeightBps, t.stakeMultiple, t.jobTerms
        );
    }

    function _copy(JobTerms memory j) internal pure returns (JobTerms memory) {
        return JobTerms(
            j.requester,
            j.modelId,
            j.inputCommitment,
            j.postedAt,
            j.feeBps,
            j.proofMode,
            j.allowFailover,
            j.callbackGasLimit
        );
    }

    /// @dev `t` with field `k` changed the way an attacker would change it: 0 the price cap raised, 1 the least
    /// stake lowered, 2 the window extended, 3 the deadline extended, 4 the price weight changed, 5 the stake
    /// multiple lowered, 6 other job terms.
    function _altered(AuctionTerms memory t, uint256 k) internal pure returns (AuctionTerms memory a) {
        a = _copy(t);
        if (k == 0) a.maxPrice += 1e18;
        else if (k == 1) a.minStake = 0;
        else if (k == 2) a.auctionEnd += 1 days;
        else if (k == 3) a.deadline += 1 days;
        else if (k == 4) a.priceWeightBps = 10_000;
        else if (k == 5) a.stakeMultiple = 1;
        else a.jobTerms = keccak256("other job terms");
    }

    /// @dev `j` with field `k` changed: 0 the requester (who the refund and the settlement's rest are credited
    /// to) made the attacker, 1 the model, 2 the input, 3 the fee waived, 4 the posting time, 5 the failover
    /// flag, 6 the callback gas, 7 the proof mode (each flipped to another value than the posted one).
    function _alteredJob(JobTerms memory j, uint256 k) internal view returns (JobTerms memory a) {
        a = _copy(j);
        if (k == 0) a.requester = stranger;
        else if (k == 1) a.modelId = auditedModelId;
        else if (k == 2) a.inputCommitment ^= 1;
        else if (k == 3) a.feeBps = 0;
        else if (k == 4) a.postedAt -= 1;
        else if (k == 5) a.allowFailover = !a.allowFailover;
        else if (k == 6) a.callbackGasLimit = a.callbackGasLimit == 0 ? 100_000 : 0;
        else a.proofMode = a.proofMode == PROOF_OPTIMISTIC ? PROOF_ZK : PROOF_OPTIMISTIC;
    }

    /// @dev Everything a refused call must leave as it was: the job's record and book, the bidders'
    /// reservations, the escrow held and what the market owes the requester and the attacker.
    function _print(bytes32 jobId) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                w.reverse.job(jobId),
                w.reverse.bestBid(jobId),
                w.reverse.runnerUp(jobId),
                w.staking.lockedOf(provider),
                w.staking.lockedOf(provider2),
                w.staking.lockedOf(provider3),
                token.balanceOf(address(w.reverse)),
                w.reverse.owed(requester),
                w.reverse.owed(stranger)
            )
        );
    }

    function _mismatch(bytes32 jobId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IMarketEvents.TermsMismatch.selector, jobId);
    }

    function _invalid(bytes32 jobId, JobState s) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, s);
    }

    /// @dev A fresh address with `amount` staked in the world's Staking.
    function _staker(string memory name, uint256 amount) internal returns (address who) {
        who = makeAddr(name);
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(w.staking), amount);
        w.staking.stake(amount);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ (a) bids with altered terms

    /// @dev Each `AuctionTerms` field altered: the bid is refused (`TermsMismatch`) and nothing moves. Where the
    /// posted terms refuse the bid for a reason of their own (above the cap, too little stake, after the window,
    /// longer than the deadline allows), the altered terms would have let it through: they are refused all the
    /// same. The posted terms still bid afterwards.
    function test_bid_withEachAuctionTermAltered_revertsTermsMismatch_bookUnchanged() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        AuctionTerms memory t = _terms(jobId);
        address thin = _staker("thin", 10e18);
        bytes32 before = _print(jobId);
        for (uint256 k; k < AUCTION_FIELDS; ++k) {
            AuctionTerms memory a = _altered(t, k);
            Bid memory b = Bid(provider2, 4e17, 60);
            bytes memory postedErr;
            if (k == 0) {
                b.price = 15e17;
                postedErr =
                    abi.encodeWithSelector(IReverseAuctionMarket.BidAboveMaxPrice.selector, 15e17, 1e18);
            } else if (k == 1) {
                b.provider = thin;
                postedErr = abi.encodeWithSelector(IStaking.InsufficientStake.selector, thin, 10e18, 50e18);
            } else if (k == 2) {
                vm.warp(t.auctionEnd);
                postedErr = abi.encodeWithSelector(IMarketEvents.AuctionClosed.selector, jobId, t.auctionEnd);
            } else if (k == 3) {
                b.latency = uint32(t.deadline - t.auctionEnd + 1);
                postedErr = abi.encodeWithSelector(
                    IMarketEvents.LatencyTooLong.selector, b.latency, t.deadline - t.auctionEnd
                );
            }
            if (postedErr.length != 0) {
                vm.prank(b.provider);
                vm.expectRevert(postedErr);
                w.reverse.bid(jobId, t, b);
            }
            vm.prank(b.provider);
            vm.expectRevert(_mismatch(jobId));
            w.reverse.bid(jobId, a, b);
            assertEq(_print(jobId), before, "a bid with altered terms moved something");
            if (k == 2) vm.warp(t.auctionEnd - 1);
        }
        _bid(jobId, provider2, 4e17, 60);
        assertEq(w.reverse.bestBid(jobId).provider, provider2);
        assertEq(w.reverse.runnerUp(jobId).provider, provider);
    }

    /// @dev Any change of any word of the terms, within its field's width (so that it decodes), is refused.
    function testFuzz_bid_anyAlteredTermsWord_revertsTermsMismatch(uint256 field, uint256 delta) public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        AuctionTerms memory t = _terms(jobId);
        field = bound(field, 0, AUCTION_FIELDS - 1);
        uint16[7] memory widths = [uint16(96), 96, 40, 40, 16, 16, 256];
        uint256 mask = widths[field] == 256 ? type(uint256).max : (uint256(1) << widths[field]) - 1;
        delta &= mask;
        vm.assume(delta != 0);
        uint256[7] memory words = abi.decode(abi.encode(t), (uint256[7]));
        words[field] ^= delta;
        AuctionTerms memory a = abi.decode(abi.encode(words), (AuctionTerms));
        bytes32 before = _print(jobId);
        vm.prank(provider2);
        vm.expectRevert(_mismatch(jobId));
        w.reverse.bid(jobId, a, Bid(provider2, 4e17, 60));
        assertEq(_print(jobId), before);
    }

    // ------------------------------------------------------------------ (b) award / refund with altered job terms

    /// @dev Each `JobTerms` field altered, sent against the posted `AuctionTerms` (whose job-terms hash they fail)
    /// or against `AuctionTerms` rehashed over them (no longer the posted ones): the award is refused either
    /// way, by the attacker or anyone. The real award then credits the settlement's rest to the posted
    /// requester, the attacker nothing.
    function test_award_withEachJobTermAltered_revertsTermsMismatch_escrowNotRedirected() public {
        Intent memory intent = _intent().withCallbackGas(0);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 5e17, 60);
        (AuctionTerms memory t, JobTerms memory j) = (_terms(jobId), _jobTerms(jobId));
        vm.warp(t.auctionEnd);
        _refuseAlteredJobTerms(jobId, t, j, true);
        vm.prank(stranger);
        w.reverse.award(jobId, t, j);
        Job memory awarded = w.reverse.job(jobId);
        assertEq(awarded.requester, requester);
        assertEq(awarded.feeBps, j.feeBps);
        uint256[] memory out = _output();
        vm.prank(provider);
        w.reverse.deliver(jobId, out, _proof(intent.inputCommitment, out));
        uint256 fee = uint256(awarded.price) * awarded.feeBps / 10_000;
        assertEq(w.reverse.owed(requester), _escrow(w.reverse, intent.maxPrice) - awarded.price - fee);
        assertEq(w.reverse.owed(stranger), 0, "the attacker was credited");
        assertEq(w.reverse.owed(provider), awarded.price);
    }

    /// @dev The same for the refund of a job nobody bid on: the escrow cannot be redirected to the attacker (or
    /// refunded without the fee, or otherwise); the real refund credits exactly the escrow to the requester.
    function test_refund_withEachJobTermAltered_revertsTermsMismatch_escrowNotRedirected() public {
        Intent memory intent = _intent();
        bytes32 jobId = _post(intent);
        (AuctionTerms memory t, JobTerms memory j) = (_terms(jobId), _jobTerms(jobId));
        vm.warp(t.auctionEnd);
        _refuseAlteredJobTerms(jobId, t, j, false);
        bytes32 before = _print(jobId);
        // the AuctionTerms altered, the job terms the posted ones
        for (uint256 k; k < AUCTION_FIELDS; ++k) {
            vm.prank(stranger);
            vm.expectRevert(_mismatch(jobId));
            w.reverse.refund(jobId, _altered(t, k), j);
        }
        assertEq(_print(jobId), before);
        vm.prank(stranger);
        w.reverse.refund(jobId, t, j);
        assertEq(w.reverse.owed(requester), _escrow(w.reverse, intent.maxPrice));
        assertEq(w.reverse.owed(stranger), 0, "the attacker was credited");
    }

    /// @dev Each `JobTerms` field altered, sent by a stranger to `award` (or `refund`) against the posted
    /// `AuctionTerms` (whose job-terms hash they fail) and against `AuctionTerms` rehashed over them (no longer the
    /// posted ones): refused with `TermsMismatch` either way, and nothing on the job moves.
    function _refuseAlteredJobTerms(bytes32 jobId, AuctionTerms memory t, JobTerms memory j, bool award)
        internal
    {
        bytes32 before = _print(jobId);
        for (uint256 k; k < JOB_FIELDS; ++k) {
            JobTerms memory a = _alteredJob(j, k);
            AuctionTerms memory rehashed = _copy(t);
            rehashed.jobTerms = keccak256(abi.encode(a));
            AuctionTerms[2] memory sent = [t, rehashed];
            for (uint256 i; i < 2; ++i) {
                vm.prank(stranger);
                vm.expectRevert(_mismatch(jobId));
                if (award) w.reverse.award(jobId, sent[i], a);
                else w.reverse.refund(jobId, sent[i], a);
            }
            assertEq(_print(jobId), before, "altered job terms moved something");
        }
    }

    // ------------------------------------------------------------------ (c) another job's terms

    /// @dev Job A's terms on job B (all of them, or B's auction terms with A's job terms): refused by every entry
    /// point; B's book, escrow and record do not move, and A's terms still work on A.
    function test_otherJobsTerms_refused() public {
        bytes32 a = _post(_intent());
        bytes32 b =
            _post(_intent().withNonce(1).withMaxPrice(2e18).withCommitment(uint256(keccak256("b")) >> 4));
        _bid(b, provider, 5e17, 60);
        (AuctionTerms memory ta, JobTerms memory ja) = (_terms(a), _jobTerms(a));
        (AuctionTerms memory tb, JobTerms memory jb) = (_terms(b), _jobTerms(b));
        assertTrue(keccak256(abi.encode(ta)) != keccak256(abi.encode(tb)), "the two jobs' terms differ");
        bytes32 before = _print(b);
        vm.prank(provider2);
        vm.expectRevert(_mismatch(b));
        w.reverse.bid(b, ta, Bid(provider2, 4e17, 60));
        vm.expectRevert(_mismatch(b));
        w.reverse.clearingPrice(b, ta);
        vm.warp(tb.auctionEnd);
        vm.expectRevert(_mismatch(b));
        w.reverse.award(b, ta, ja);
        vm.expectRevert(_mismatch(b));
        w.reverse.award(b, tb, ja);
        vm.expectRevert(_mismatch(b));
        w.reverse.refund(b, ta, ja);
        assertEq(_print(b), before);
        // each job with its own terms
        _refundOn(w.reverse, a);
        assertEq(uint256(w.reverse.job(a).state), uint256(JobState.Refunded));
        w.reverse.award(b, tb, jb);
        assertEq(w.reverse.job(b).provider, provider);
        assertEq(w.reverse.job(b).maxPrice, 2e18);
    }

    /// @dev Two jobs posted in the same block from intents that differ only in their nonce have the same terms
    /// (the nonce is no term): either job's terms are the other's, by design, and harmless: a bid, an award or
    /// a refund acts on the job it names alone (its own book and escrow).
    function test_identicalTerms_actOnTheNamedJobOnly() public {
        bytes32 a = _post(_intent());
        bytes32 b = _post(_intent().withNonce(1));
        AuctionTerms memory t = _terms(a);
        assertEq(keccak256(abi.encode(t)), keccak256(abi.encode(_terms(b))));
        vm.prank(provider);
        w.reverse.bid(b, t, Bid(provider, 5e17, 60));
        assertEq(w.reverse.bestBid(a).provider, address(0), "a bid named b moved a's book");
        assertEq(w.reverse.bestBid(b).provider, provider);
        vm.warp(t.auctionEnd);
        _refundOn(w.reverse, a);
        assertEq(uint256(w.reverse.job(a).state), uint256(JobState.Refunded));
        assertEq(uint256(w.reverse.job(b).state), uint256(JobState.Open));
        assertEq(w.reverse.owed(requester), _escrow(w.reverse, 1e18), "one escrow refunded");
        _award(b);
        assertEq(uint256(w.reverse.job(b).state), uint256(JobState.Awarded));
    }

    // ------------------------------------------------------------------ (d) dirty calldata

    /// @dev `data` with bit `bit` of its argument word `word` (0: the first argument after the selector) set.
    function _dirty(bytes memory data, uint256 word, uint256 bit) internal pure returns (bytes memory d) {
        d = bytes.concat(data);
        uint256 offset = 4 + 32 * word + 31 - bit / 8;
        d[offset] = d[offset] | bytes1(uint8(1 << (bit % 8)));
    }

    /// @dev Sends `data` to the market as `caller`; it must fail, with `TermsMismatch` or a decoding revert
    /// (no data), and move nothing.
    function _expectDirtyRefused(bytes32 jobId, address caller, bytes memory data) internal {
        bytes32 before = _print(jobId);
        vm.prank(caller);
        (bool ok, bytes memory ret) = address(w.reverse).call(data);
        assertFalse(ok, "dirty terms accepted");
        assertTrue(ret.length == 0 || keccak256(ret) == keccak256(_mismatch(jobId)), "unexpected revert");
        assertEq(_print(jobId), before);
    }

    /// @dev The terms' padding is part of their hash (`TermsLib.openWordOf` hashes the calldata as sent): terms
    /// whose fields read back the same to a lenient decoder but carry a dirty high bit (or the first bit above
    /// the field's width) in any typed word can only fail the check. The clean calldata goes through.
    function test_bid_dirtyTermsPadding_refused() public {
        bytes32 jobId = _post(_intent());
        AuctionTerms memory t = _terms(jobId);
        bytes memory data = abi.encodeCall(IReverseAuctionMarket.bid, (jobId, t, Bid(provider2, 4e17, 60)));
        // argument words 1-6: maxPrice, minStake (96 bits), auctionEnd, deadline (40), weight, multiple (16)
        uint16[6] memory widths = [uint16(96), 96, 40, 40, 16, 16];
        for (uint256 f; f < 6; ++f) {
            _expectDirtyRefused(jobId, provider2, _dirty(data, 1 + f, 255));
            _expectDirtyRefused(jobId, provider2, _dirty(data, 1 + f, widths[f]));
        }
        // truncated: the decoder refuses it
        bytes memory short = new bytes(data.length - 1);
        for (uint256 i; i < short.length; ++i) {
            short[i] = data[i];
        }
        _expectDirtyRefused(jobId, provider2, short);
        vm.prank(provider2);
        (bool ok,) = address(w.reverse).call(data);
        assertTrue(ok, "the clean bid was refused");
        assertEq(w.reverse.bestBid(jobId).provider, provider2);
    }

    /// @dev The same for the job terms of the award and the refund: a dirty requester (the address's upper
    /// bits), posting time, fee, proof mode, failover flag or callback gas, and dirty auction terms.
    function test_awardAndRefund_dirtyTermsPadding_refused() public {
        bytes32 awarded = _post(_intent());
        bytes32 refunded = _post(_intent().withNonce(1).withMaxPrice(2e18));
        _bid(awarded, provider, 5e17, 60);
        (AuctionTerms memory ta, JobTerms memory ja) = (_terms(awarded), _jobTerms(awarded));
        (AuctionTerms memory tr, JobTerms memory jr) = (_terms(refunded), _jobTerms(refunded));
        vm.warp(ta.auctionEnd);
        bytes memory award = abi.encodeCall(IReverseAuctionMarket.award, (awarded, ta, ja));
        bytes memory refund = abi.encodeCall(IReverseAuctionMarket.refund, (refunded, tr, jr));
        // job-terms words 8-15: requester (160 bits), modelId, inputCommitment (full words), postedAt (40), feeBps
        // (16), proofMode (8), allowFailover (1), callbackGasLimit (32)
        uint16[8] memory widths = [uint16(160), 256, 256, 40, 16, 8, 1, 32];
        for (uint256 f; f < 8; ++f) {
            if (widths[f] == 256) continue;
            _expectDirtyRefused(awarded, stranger, _dirty(award, 8 + f, 255));
            _expectDirtyRefused(awarded, stranger, _dirty(award, 8 + f, widths[f]));
            _expectDirtyRefused(refunded, stranger, _dirty(refund, 8 + f, 255));
            _expectDirtyRefused(refunded, stranger, _dirty(refund, 8 + f, widths[f]));
        }
        for (uint256 f; f < 6; ++f) {
            _expectDirtyRefused(awarded, stranger, _dirty(award, 1 + f, 255));
            _expectDirtyRefused(refunded, stranger, _dirty(refund, 1 + f, 255));
        }
        vm.prank(stranger);
        (bool ok,) = address(w.reverse).call(award);
        assertTrue(ok, "the clean award was refused");
        vm.prank(stranger);
        (ok,) = address(w.reverse).call(refund);
        assertTrue(ok, "the clean refund was refused");
        assertEq(uint256(w.reverse.job(awarded).state), uint256(JobState.Awarded));
        assertEq(uint256(w.reverse.job(refunded).state), uint256(JobState.Refunded));
        assertEq(w.reverse.owed(requester), _escrow(w.reverse, 2e18));
        assertEq(w.reverse.owed(stranger), 0);
    }

    // ------------------------------------------------------------------ (e) terms replayed after Open

    /// @dev Once awarded (or refunded), the posted terms open nothing again: bid, award, refund and the clearing
    /// price revert `InvalidState` with the job's state, whatever terms are sent; an unknown job is `None`.
    function test_termsReplayedAfterOpen_revertInvalidState() public {
        bytes32 jobId = _post(_intent());
        _bid(jobId, provider, 5e17, 60);
        (AuctionTerms memory t, JobTerms memory j) = (_terms(jobId), _jobTerms(jobId));
        vm.warp(t.auctionEnd);
        _award(jobId);
        bytes memory awardedErr = _invalid(jobId, JobState.Awarded);
        bytes32 before = _print(jobId);
        vm.prank(provider2);
        vm.expectRevert(awardedErr);
        w.reverse.bid(jobId, t, Bid(provider2, 4e17, 60));
        vm.expectRevert(awardedErr);
        w.reverse.award(jobId, t, j);
        vm.expectRevert(awardedErr);
        w.reverse.refund(jobId, t, j);
        vm.expectRevert(awardedErr);
        w.reverse.clearingPrice(jobId, t);
        // other terms: the state is what is wrong
        vm.expectRevert(awardedErr);
        w.reverse.award(jobId, _altered(t, 0), j);
        assertEq(_print(jobId), before);

        bytes32 refunded = _post(_intent().withNonce(1));
        (AuctionTerms memory tr, JobTerms memory jr) = (_terms(refunded), _jobTerms(refunded));
        vm.warp(tr.auctionEnd);
        _refund(refunded);
        bytes memory refundedErr = _invalid(refunded, JobState.Refunded);
        vm.expectRevert(refundedErr);
        w.reverse.refund(refunded, tr, jr);
        vm.expectRevert(refundedErr);
        w.reverse.award(refunded, tr, jr);

        bytes32 none = keccak256("none");
        vm.expectRevert(_invalid(none, JobState.None));
        w.reverse.award(none, t, j);
        vm.expectRevert(_invalid(none, JobState.None));
        w.reverse.refund(none, t, j);
        vm.prank(provider);
        vm.expectRevert(_invalid(none, JobState.None));
        w.reverse.bid(none, t, Bid(provider, 4e17, 60));
    }

    // ------------------------------------------------------------------ (f) the record

    /// @dev While Open `job()` shows the state alone (every other field zero, the provider deadline 0); the award
    /// writes the whole record, every term equal to the posted terms.
    function test_job_openShowsStateOnly_awardWritesThePostedTerms() public {
        bytes32 jobId = _post(_intent());
        Job memory open;
        open.state = JobState.Open;
        assertEq(keccak256(abi.encode(w.reverse.job(jobId))), keccak256(abi.encode(open)), "Open record");
        _bid(jobId, provider, 5e17, 60);
        assertEq(
            keccak256(abi.encode(w.reverse.job(jobId))), keccak256(abi.encode(open)), "a bid wrote the record"
        );
        assertEq(w.reverse.providerDeadline(jobId), 0);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        vm.warp(t.auctionEnd);
        _award(jobId);
        Job memory j = w.reverse.job(jobId);
        assertEq(uint256(j.state), uint256(JobState.Awarded));
        assertEq(j.requester, jt.requester, "requester");
        assertEq(j.requester, requester);
        assertEq(j.maxPrice, t.maxPrice, "maxPrice");
        assertEq(j.minStake, t.minStake, "minStake");
        assertEq(j.minStake, 50e18);
        assertEq(j.deadline, t.deadline, "deadline");
        assertEq(j.auctionEnd, t.auctionEnd, "auctionEnd");
        assertEq(j.postedAt, jt.postedAt, "postedAt");
        assertEq(uint256(j.postedAt) + 60, j.auctionEnd);
        assertEq(j.modelId, jt.modelId, "modelId");
        assertEq(j.inputCommitment, jt.inputCommitment, "inputCommitment");
        assertEq(j.feeBps, jt.feeBps, "feeBps");
        assertEq(j.feeBps, 100);
        assertEq(j.stakeMultiple, t.stakeMultiple, "stakeMultiple");
        assertEq(j.stakeMultiple, 2);
        assertEq(j.priceWeightBps, t.priceWeightBps, "priceWeightBps");
        assertEq(j.priceWeightBps, 7000);
        assertTrue(j.allowFailover == jt.allowFailover && j.allowFailover, "allowFailover");
        assertEq(j.proofMode, jt.proofMode, "proofMode");
        assertEq(j.callbackGasLimit, jt.callbackGasLimit, "callbackGasLimit");
        assertEq(j.callbackGasLimit, 100_000);
        // and the award's own fields
        assertEq(j.provider, provider);
        assertEq(j.price, 5e17);
        assertEq(j.latency, 60);
        assertEq(j.awardedAt, block.timestamp);
        assertEq(j.stakeLocked, 50e18);
        assertEq(w.reverse.providerDeadline(jobId), block.timestamp + 60);
    }

    // ------------------------------------------------------------------ (g) the refund's record

    /// @dev A job nobody bid on, refunded by anyone: the requester of the posted job terms is credited exactly the
    /// escrow (price cap plus the posted fee), and the record holds what the refund reads (requester, proof
    /// mode, fee, callback gas, state, deadline, price cap) and nothing else.
    function test_refund_noBids_creditsTheEscrowAndWritesTheRefundsRecord() public {
        Intent memory intent = _intent().withMaxPrice(3e18).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _post(intent);
        (AuctionTerms memory t, JobTerms memory jt) = (_terms(jobId), _jobTerms(jobId));
        uint256 escrow = _escrow(w.reverse, 3e18);
        uint256 held = token.balanceOf(address(w.reverse));
        vm.warp(t.auctionEnd);
        vm.expectEmit(address(w.reverse));
        emit IMarketEvents.Refunded(jobId, requester, escrow);
        vm.prank(stranger);
        w.reverse.refund(jobId, t, jt);
        assertEq(w.reverse.owed(requester), escrow);
        assertEq(w.reverse.owed(stranger), 0);
        assertEq(token.balanceOf(address(w.reverse)), held, "a refund is a credit");
        Job memory expected;
        (expected.requester, expected.state, expected.proofMode) =
        (requester, JobState.Refunded, PROOF_OPTIMISTIC);
        (expected.feeBps, expected.callbackGasLimit) = (100, 100_000);
        (expected.deadline, expected.maxPrice) = (t.deadline, 3e18);
        assertEq(
            keccak256(abi.encode(w.reverse.job(jobId))), keccak256(abi.encode(expected)), "refund record"
        );
        assertEq(w.reverse.providerDeadline(jobId), 0);
        vm.prank(requester);
        assertEq(w.reverse.withdraw(), escrow);
    }

    // ------------------------------------------------------------------ (h) delivery before the award

    /// @dev A delivery never awards an Open job: refused during the window and after it (by the best bidder
    /// too), with `InvalidState(Open)`; nothing moves.
    function test_deliver_onOpenJob_revertsInvalidStateOpen() public {
        Intent memory intent = _intent().withCallbackGas(0);
        bytes32 jobId = _post(intent);
        _bid(jobId, provider, 5e17, 60);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _print(jobId);
        vm.prank(provider);
        vm.expectRevert(_invalid(jobId, JobState.Open));
        w.reverse.deliver(jobId, out, proof);
        vm.warp(_terms(jobId).auctionEnd);
        vm.prank(provider);
        vm.expectRevert(_invalid(jobId, JobState.Open));
        w.reverse.deliver(jobId, out, proof);
        vm.prank(provider);
        vm.expectRevert(_invalid(jobId, JobState.Open));
        w.reverse.deliver(jobId, out, "");
        assertEq(_print(jobId), before);
        _award(jobId);
        vm.prank(provider);
        w.reverse.deliver(jobId, out, proof);
        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Settled));
    }

    // ------------------------------------------------------------------ (i) the pause flag in the params slot

    function _paramsSlotWord() internal view returns (uint256) {
        return uint256(vm.load(address(w.reverse), bytes32(uint256(MARKET_STORAGE) + 1)));
    }

    function _assertParams(MarketParams memory expected, string memory when) internal view {
        assertEq(keccak256(abi.encode(w.reverse.params())), keccak256(abi.encode(expected)), when);
    }

    /// @dev `pause` / `unpause` (owner only) toggle `paused()`, kept in the top bit of the params slot; while
    /// paused, posting and bidding revert `EnforcedPause`, the params read back unchanged, and an award or a
    /// refund still goes through (no escrow is held hostage).
    function test_pause_togglesTheFlag_blocksPostAndBid_paramsUnchanged() public {
        bytes32 jobId = _post(_intent());
        bytes32 idle = _post(_intent().withNonce(1));
        _bid(jobId, provider, 5e17, 60);
        AuctionTerms memory t = _terms(jobId);
        MarketParams memory p = _defaultParams();
        assertFalse(w.reverse.paused());
        assertEq(_paramsSlotWord() >> 255, 0);
        vm.prank(stranger);
        vm.expectRevert();
        w.reverse.pause();
        vm.expectEmit(address(w.reverse));
        emit Pausable.Paused(owner);
        vm.prank(owner);
        w.reverse.pause();
        assertTrue(w.reverse.paused());
        assertEq(_paramsSlotWord() >> 255, 1, "the flag is the params slot's top bit");
        _assertParams(p, "the flag leaked into the params");
        assertEq(w.reverse.escrowFor(1e18), _escrow(w.reverse, 1e18));
        vm.prank(owner);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        w.reverse.pause();

        Intent memory next = _intent().withNonce(2);
        vm.prank(requester);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        w.reverse.post(next);
        vm.prank(provider2);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        w.reverse.bid(jobId, t, Bid(provider2, 4e17, 60));
        // the exits stay open
        vm.warp(t.auctionEnd);
        _award(jobId);
        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Awarded));
        _refund(idle);
        assertEq(uint256(w.reverse.job(idle).state), uint256(JobState.Refunded));

        vm.prank(stranger);
        vm.expectRevert();
        w.reverse.unpause();
        vm.expectEmit(address(w.reverse));
        emit Pausable.Unpaused(owner);
        vm.prank(owner);
        w.reverse.unpause();
        assertFalse(w.reverse.paused());
        assertEq(_paramsSlotWord() >> 255, 0);
        _assertParams(p, "unpausing changed the params");
        vm.prank(owner);
        vm.expectRevert(Pausable.ExpectedPause.selector);
        w.reverse.unpause();
        _post(next);
    }

    /// @dev A params change scheduled and applied while paused rewrites the params slot: the market stays
    /// paused, and the params read back exactly as set (the flag does not leak into them, nor they clear it);
    /// a change applied while unpaused does not pause it.
    function test_pause_setParamsAndApplyParamsWhilePaused_keepsThePause() public {
        MarketParams memory p = _defaultParams();
        p.feeBps = 500;
        p.stakeMultiple = 7;
        // the last field fills the slot up to bit 240: its top bits set
        p.challengeBond = type(uint96).max;
        p.maxCallbackGas = type(uint32).max;
        vm.prank(owner);
        w.reverse.pause();
        vm.prank(owner);
        w.reverse.setParams(p);
        assertTrue(w.reverse.paused());
        vm.warp(block.timestamp + 2 days);
        vm.prank(stranger);
        w.reverse.applyParams();
        assertTrue(w.reverse.paused(), "applying params unpaused the market");
        assertEq(_paramsSlotWord() >> 255, 1);
        _assertParams(p, "params while paused");
        vm.prank(requester);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        w.reverse.post(_intent());
        vm.prank(owner);
        w.reverse.unpause();
        _assertParams(p, "params after unpausing");
        // the new params are in force: the job is posted with the new fee and stake multiple
        bytes32 jobId = _post(_intent());
        assertEq(_jobTerms(jobId).feeBps, 500);
        assertEq(_terms(jobId).stakeMultiple, 7);
        assertEq(w.reverse.owed(requester), 0);
        // and a change applied while unpaused leaves it unpaused
        p.feeBps = 200;
        vm.prank(owner);
        w.reverse.setParams(p);
        vm.warp(block.timestamp + 2 days);
        w.reverse.applyParams();
        assertFalse(w.reverse.paused());
        _assertParams(p, "params after a change while unpaused");
    }

    // ------------------------------------------------------------------ (j) the market's copy of proof modes

    /// @dev A model the registry does not know is refused (`UnknownModel`), and the miss is not remembered: once
    /// registered, the same model posts.
    function test_post_unknownModel_refused_thenPostsOnceRegistered() public {
        ModelInfo memory info = _modelInfo(3, 0);
        info.settingsHash = keccak256("another settings.json");
        bytes32 id = registry.computeModelId(address(this), info);
        Intent memory intent = _intent().withModel(id);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.UnknownModel.selector, id));
        w.reverse.post(intent);
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.UnknownModel.selector, id));
        w.dutch.post(_dutchIntent().withModel(id));
        assertEq(registry.register(info), id);
        bytes32 jobId = _post(intent);
        assertEq(_jobTerms(jobId).modelId, id);
        assertEq(uint256(w.reverse.job(jobId).state), uint256(JobState.Open));
    }

    /// @dev Posting twice the same model works, the second time from the market's copy (the registry is not
    /// read again), and the copy keeps the model's modes: a proof mode the model does not support is still
    /// refused.
    function test_post_sameModelTwice_usesTheCopy_keepsTheModes() public {
        vm.record();
        bytes32 first = _post(_intent().withModel(zkOnlyModelId));
        (bytes32[] memory reads,) = vm.accesses(address(registry));
        assertTrue(reads.length > 0, "the first posting copies the modes from the registry");
        vm.record();
        bytes32 second = _post(_intent().withModel(zkOnlyModelId).withNonce(1));
        (reads,) = vm.accesses(address(registry));
        assertEq(reads.length, 0, "the second posting read the registry");
        assertTrue(first != second);
        assertEq(uint256(w.reverse.job(second).state), uint256(JobState.Open));
        vm.prank(requester);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMarketEvents.UnsupportedProofMode.selector, zkOnlyModelId, PROOF_OPTIMISTIC
            )
        );
        w.reverse.post(_intent().withModel(zkOnlyModelId).withNonce(2).withProofMode(PROOF_OPTIMISTIC));
        // both jobs award and settle as usual
        _bid(second, provider, 5e17, 60);
        vm.warp(_terms(second).auctionEnd);
        _award(second);
        assertEq(w.reverse.job(second).modelId, zkOnlyModelId);
    }

    // ------------------------------------------------------------------ scoreOf on terms no job can have

    /// A price weight above 10000 would wrap `(10000 - weight)` inside the score's unchecked block: terms no posted
    /// job can have score 0, as do a latency range of zero and a price over 96 bits.
    function test_scoreOf_termsNoJobCanHave_scoreZero() public view {
        AuctionTerms memory t = AuctionTerms(1e18, 0, 100, 700, 10_001, 2, bytes32(0));
        assertEq(w.reverse.scoreOf(t, 5e17, 60), 0, "weight over 10000");
        t.priceWeightBps = 10_000;
        assertEq(w.reverse.scoreOf(t, 5e17, 60), 10_000 * 5e17 * 600, "weight 10000: price only");
        t.deadline = 100;
        assertEq(w.reverse.scoreOf(t, 5e17, 60), 0, "no latency range");
        t.deadline = 700;
        assertEq(w.reverse.scoreOf(t, uint256(type(uint96).max) + 1, 60), 0, "price over 96 bits");
    }
}
