// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IModelRegistry} from "../../../src/interfaces/IModelRegistry.sol";
import {Test} from "../../utils/Test.sol";
import {IntentBuilder} from "../../utils/IntentBuilder.sol";
import {TestToken} from "../../../src/TestToken.sol";
import {Staking} from "../../../src/Staking.sol";
import {QuoteMarket} from "../../../src/QuoteMarket.sol";
import {Quote, QuotedJob} from "../../../src/interfaces/IQuoteMarket.sol";
import {AUCTION_QUOTE, Intent, JobState} from "../../../src/MarketStructs.sol";

/// @notice Drives a QuoteMarket: signed-quote awards (by the provider, its solver or a forger; fresh or
/// replayed intents), honest and dishonest zk deliveries, expiries, result-commitment slashes (with the
/// commitment the provider signed at award, whether or not it matches), withdrawals and time warps. Every
/// job's provider signs a result commitment to output A when it is awarded; it then proves A (honest) or B.
/// Jobs are also opened in batches (`openBatch`: duplicates, replays, forged quotes, stakes that do not all fit).
/// Ghost totals: awards per job, slashes of honest providers, the escrow held for awarded jobs.
contract QuoteHandler is Test {
    using IntentBuilder for Intent;

    struct Deps {
        TestToken token;
        Staking staking;
        QuoteMarket market;
        address requester;
        uint256 requesterKey;
        address[2] providers;
        uint256[2] providerKeys;
        uint256 solverKey; // authorised by providers[0] only
        bytes32 modelId;
        // a hashed batch model (MockBatchVerifier(0)): 2 jobs per proof, 2 outputs each, outputs from instance 2
        bytes32 batchModelId;
    }

    struct Rec {
        Intent intent;
        QuotedJob terms;
        bytes32 deliveredHash;
        bool dishonest;
    }

    TestToken internal token;
    Staking internal staking;
    QuoteMarket internal market;
    Deps internal d;

    bytes32[] public jobIds;
    mapping(bytes32 => Rec) internal recs;
    uint256 internal nextNonce;

    // ghosts
    mapping(bytes32 => uint256) public awards;
    uint256 public maxAwards;
    uint256 public honestSlashes;
    uint256 public dishonestSlashes;
    uint256 public escrowHeld;
    uint256 public forgedAwards;
    uint256 public withdrawn;
    // how many times each job settled (by `deliver` or in a batch), and the most any job did
    mapping(bytes32 => uint256) public settles;
    uint256 public maxSettles;
    // batches whose caller was credited other than the sum of its settled slots' own prices
    uint256 public batchPayMismatches;
    uint256 public batchesSettled;
    uint256 public batchesOpened;

    constructor(Deps memory deps) {
        d = deps;
        token = deps.token;
        staking = deps.staking;
        market = deps.market;
    }

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function termsOf(bytes32 id) external view returns (QuotedJob memory) {
        return recs[id].terms;
    }

    function outputA() public pure returns (uint256[] memory out) {
        out = new uint256[](2);
        (out[0], out[1]) = (7, 11);
    }

    function outputB() public pure returns (uint256[] memory out) {
        out = new uint256[](2);
        (out[0], out[1]) = (8, 11);
    }

    // ------------------------------------------------------------------ actions

    /// @dev A fresh intent awarded from a quote signed by the provider, its solver or a forger (by `signer`).
    function open(uint256 priceSeed, uint256 who, uint256 signer, uint256 latencySeed) external {
        uint256 p = who % 2;
        bytes32 model = priceSeed % 3 == 0 ? d.batchModelId : d.modelId;
        Intent memory intent = IntentBuilder.init(d.requester, model).withAuctionType(AUCTION_QUOTE)
            .withNonce(nextNonce++).withDeadline(uint64(block.timestamp + 300));
        bytes32 id = market.hashIntent(intent);
        Quote memory q = Quote({
            jobId: id,
            provider: d.providers[p],
            price: bound(priceSeed, 1, 1e18),
            latency: uint32(bound(latencySeed, 1, 320)),
            expiry: uint64(block.timestamp + 5)
        });
        // mostly the provider itself; sometimes its solver (a forger for providers[1]) or a stranger
        signer %= 5;
        uint256 key = signer < 3 ? d.providerKeys[p] : signer == 3 ? d.solverKey : 0xBAD;
        bool forged = signer == 4 || (signer == 3 && p == 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashQuote(q));
        vm.prank(d.requester);
        try market.openAwarded(intent, q, abi.encodePacked(r, s, v), "") {
            if (forged) ++forgedAwards;
            _awarded(id, intent, q);
        } catch {}
    }

    /// @dev Up to four entries in one `openAwardedBatch` by the requester: fresh intents, a duplicate of an earlier
    /// entry, a replay of a job already awarded, quotes from the provider, its solver or a forger, some with a
    /// minStake that the providers' stake cannot hold for all of them. Only the awarded entries (the result's
    /// bits) are recorded.
    function openBatch(uint256 seed, uint8 count) external {
        uint256 n = bound(count, 1, 4);
        Intent[] memory intents = new Intent[](n);
        Quote[] memory quotes = new Quote[](n);
        bytes[] memory sigs = new bytes[](n);
        bool[] memory forged = new bool[](n);
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            if (i > 0 && r % 5 == 0) {
                uint256 k = r % i; // a duplicate of an earlier entry
                (intents[i], quotes[i], sigs[i], forged[i]) = (intents[k], quotes[k], sigs[k], forged[k]);
                continue;
            }
            if (r % 7 == 1 && jobIds.length != 0) {
                // a replay of a job already awarded
                Rec storage rec = recs[jobIds[r % jobIds.length]];
                intents[i] = rec.intent;
            } else {
                intents[i] = IntentBuilder.init(d.requester, (r >> 8) % 3 == 0 ? d.batchModelId : d.modelId)
                    .withAuctionType(AUCTION_QUOTE).withNonce(nextNonce++)
                    .withDeadline(uint64(block.timestamp + 300)).withMinStake((r >> 16) % 4 == 0 ? 60e18 : 0);
            }
            uint256 p = (r >> 24) % 2;
            quotes[i] = Quote({
                jobId: market.hashIntent(intents[i]),
                provider: d.providers[p],
                price: bound(r >> 32, 1, 1e18),
                latency: uint32(bound(r >> 128, 1, 320)),
                expiry: uint64(block.timestamp + 5)
            });
            uint256 signer = (r >> 64) % 6;
            uint256 key = signer < 4 ? d.providerKeys[p] : signer == 4 ? d.solverKey : 0xBAD;
            forged[i] = signer == 5 || (signer == 4 && p == 1);
            (uint8 v, bytes32 rs, bytes32 ss) = vm.sign(key, market.hashQuote(quotes[i]));
            sigs[i] = abi.encodePacked(rs, ss, v);
        }
        // the requester sends: no acceptances, or an empty one per entry
        bytes[] memory accepts = new bytes[](seed % 2 == 0 ? 0 : n);
        vm.prank(d.requester);
        try market.openAwardedBatch(intents, quotes, sigs, accepts) returns (uint256 awarded) {
            ++batchesOpened;
            for (uint256 i; i < n; ++i) {
                if (awarded & (1 << i) == 0) continue;
                if (forged[i]) ++forgedAwards;
                _awarded(quotes[i].jobId, intents[i], quotes[i]);
            }
        } catch {}
    }

    /// @dev The same intent and quote again (a replay).
    function replay(uint256 seed, uint256 quoteSeed) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[seed % jobIds.length];
        Rec storage rec = recs[id];
        Quote memory q = Quote({
            jobId: id,
            provider: rec.terms.provider,
            price: rec.terms.price,
            latency: uint32(bound(quoteSeed, 1, 60)),
            expiry: uint64(block.timestamp + 5)
        });
        uint256 key = rec.terms.provider == d.providers[0] ? d.providerKeys[0] : d.providerKeys[1];
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashQuote(q));
        Intent memory intent = rec.intent;
        vm.prank(d.requester);
        try market.openAwarded(intent, q, abi.encodePacked(r, s, v), "") {
            _awarded(id, intent, q);
        } catch {}
    }

    function deliver(uint256 seed, bool honest) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[seed % jobIds.length];
        Rec storage rec = recs[id];
        uint256[] memory out = honest ? outputA() : outputB();
        uint256[] memory instances = new uint256[](3);
        (instances[0], instances[1], instances[2]) = (rec.terms.inputCommitment, out[0], out[1]);
        QuotedJob memory t = rec.terms;
        vm.prank(t.provider);
        try market.deliver(id, t, out, abi.encode(instances)) {
            rec.deliveredHash = keccak256(abi.encode(out));
            rec.dishonest = !honest;
            escrowHeld -= uint256(t.price) + uint256(t.price) * t.feeBps / 10_000;
            _settled(id);
        } catch {}
    }

    /// @dev Two jobs (possibly the same one, another model's, another provider's, late or settled) in one
    /// batch proof of the batch model, delivered by `seedA`'s provider; each slot honest or not on its own.
    function deliverBatch(uint256 seedA, uint256 seedB, bool honestA, bool honestB) external {
        if (jobIds.length == 0) return;
        bytes32[] memory ids = new bytes32[](2);
        (ids[0], ids[1]) = (jobIds[seedA % jobIds.length], jobIds[seedB % jobIds.length]);
        QuotedJob[] memory terms = new QuotedJob[](2);
        (terms[0], terms[1]) = (recs[ids[0]].terms, recs[ids[1]].terms);
        uint256[][] memory outs = new uint256[][](2);
        (outs[0], outs[1]) = (honestA ? outputA() : outputB(), honestB ? outputA() : outputB());
        uint256[] memory inst = new uint256[](6);
        (inst[0], inst[1]) = (terms[0].inputCommitment, terms[1].inputCommitment);
        (inst[2], inst[3], inst[4], inst[5]) = (outs[0][0], outs[0][1], outs[1][0], outs[1][1]);
        address caller = terms[0].provider;
        uint256 owedBefore = market.owed(caller);
        vm.prank(caller);
        try market.deliverBatch(d.batchModelId, ids, terms, outs, abi.encode(inst)) returns (
            uint256 settled
        ) {
            ++batchesSettled;
            uint256 paid;
            for (uint256 i; i < 2; ++i) {
                if (settled & (1 << i) == 0) continue;
                Rec storage rec = recs[ids[i]];
                rec.deliveredHash = keccak256(abi.encode(outs[i]));
                rec.dishonest = i == 0 ? !honestA : !honestB;
                escrowHeld -= uint256(terms[i].price) + uint256(terms[i].price) * terms[i].feeBps / 10_000;
                paid += terms[i].price;
                _settled(ids[i]);
            }
            if (market.owed(caller) - owedBefore != paid) ++batchPayMismatches;
        } catch {}
    }

    function expire(uint256 seed) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[seed % jobIds.length];
        QuotedJob memory t = recs[id].terms;
        try market.expire(id, t) {
            escrowHeld -= uint256(t.price) + uint256(t.price) * t.feeBps / 10_000;
        } catch {}
    }

    /// @dev Submits the commitment to output A the provider signed at award, claiming `claimed` was delivered.
    function slash(uint256 seed, bool claimDelivered) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[seed % jobIds.length];
        Rec storage rec = recs[id];
        bytes32 committed = keccak256(abi.encode(outputA()));
        bytes32 claimed = claimDelivered ? rec.deliveredHash : keccak256(abi.encode(outputB()));
        uint256 key = rec.terms.provider == d.providers[0] ? d.providerKeys[0] : d.providerKeys[1];
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashCommitment(id, committed));
        try market.slashCommitment(id, rec.terms, claimed, committed, abi.encodePacked(r, s, v)) {
            (JobState st,) = market.jobState(id);
            // slashed only when the output proved on chain is not the committed one
            if (rec.dishonest && rec.deliveredHash != committed && st == JobState.Slashed) {
                ++dishonestSlashes;
            } else {
                ++honestSlashes;
            }
        } catch {}
    }

    function withdraw(uint256 seed) external {
        address who = seed % 2 == 0 ? d.requester : d.providers[seed % 4 / 2];
        if (market.owed(who) == 0) return;
        vm.prank(who);
        withdrawn += market.withdraw();
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 200));
    }

    // ------------------------------------------------------------------ ghosts

    function _settled(bytes32 id) internal {
        uint256 n = ++settles[id];
        if (n > maxSettles) maxSettles = n;
    }

    function _awarded(bytes32 id, Intent memory intent, Quote memory q) internal {
        if (awards[id] == 0) jobIds.push(id);
        uint256 n = ++awards[id];
        if (n > maxAwards) maxAwards = n;
        uint256 stake = q.price * market.params().stakeMultiple;
        if (stake < intent.minStake) stake = intent.minStake;
        uint256 due = block.timestamp + q.latency;
        if (due > intent.deadline) due = intent.deadline;
        Rec storage rec = recs[id];
        rec.intent = intent;
        rec.terms = QuotedJob({
            requester: intent.requester,
            provider: q.provider,
            modelId: intent.modelId,
            inputCommitment: intent.inputCommitment,
            price: uint96(q.price),
            stakeLocked: uint96(stake),
            awardedAt: uint40(block.timestamp),
            due: uint40(due),
            feeBps: market.params().feeBps,
            layout: _layout(intent.modelId)
        });
        escrowHeld += q.price + q.price * market.params().feeBps / 10_000;
    }

    function _layout(bytes32 modelId) internal view returns (uint256 word) {
        (word,) = IModelRegistry(market.registry()).recordWordAndModesOf(modelId);
    }
}
