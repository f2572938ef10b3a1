// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "../../utils/Test.sol";
import {TestToken} from "../../../src/TestToken.sol";
import {Staking} from "../../../src/Staking.sol";
import {TokenMarket} from "../../../src/TokenMarket.sol";
import {TokenJob, JobState, TokenQuote} from "../../../src/interfaces/ITokenMarket.sol";

/// @notice Drives a TokenMarket through opens, deliveries (full, EOS-short, truncated), challenges, votes of
/// both kinds, audit draws, finalizations, expiries, withdrawals and time. Every input is bounded; ghost totals
/// track what the market must hold.
contract TokenHandler is Test {
    uint32 internal constant EOS = 256;

    TestToken internal immutable token;
    Staking internal immutable staking;
    TokenMarket internal immutable market;
    address internal immutable requester;
    address internal immutable provider;
    uint256 internal immutable providerKey;
    address internal immutable challenger;
    address[3] internal reexecutors;
    bytes32 internal immutable modelId;

    bytes32[] public jobs;
    uint256 internal salt;
    /// tokens paid into the market (escrows, bonds) and out of it (withdrawals)
    uint256 public ghost_in;
    uint256 public ghost_out;
    /// jobs that reached Slashed while every vote cast on them was faithful (must stay 0)
    uint256 public ghost_slashedWithoutQuorum;
    /// terminal outcomes reached (the run is not vacuous)
    uint256 public ghost_settled;
    uint256 public ghost_slashed;

    constructor(
        TestToken token_,
        Staking staking_,
        TokenMarket market_,
        address requester_,
        address provider_,
        uint256 providerKey_,
        address challenger_,
        address[3] memory reexecutors_,
        bytes32 modelId_
    ) {
        token = token_;
        staking = staking_;
        market = market_;
        requester = requester_;
        provider = provider_;
        providerKey = providerKey_;
        challenger = challenger_;
        reexecutors = reexecutors_;
        modelId = modelId_;
    }

    /// @dev The first job in `state` from a random start (so that every action usually has a target).
    function _pick(uint256 seed, JobState state) internal view returns (bool found, bytes32 jobId) {
        uint256 n = jobs.length;
        for (uint256 k; k < n; ++k) {
            jobId = jobs[(seed + k) % n];
            if (market.job(jobId).state == state) return (true, jobId);
        }
    }

    function jobCount() external view returns (uint256) {
        return jobs.length;
    }

    function open(uint32 maxTokens, uint96 pricePer1k) external {
        maxTokens = uint32(bound(maxTokens, 1, 256));
        pricePer1k = uint96(bound(pricePer1k, 1, 1e18));
        TokenQuote memory q = TokenQuote({
            requester: requester,
            provider: provider,
            modelId: modelId,
            requestHash: keccak256(abi.encode(salt)),
            maxTokens: maxTokens,
            pricePer1k: pricePer1k,
            latency: 60,
            expiry: uint64(block.timestamp + 30),
            salt: ++salt
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(providerKey, market.hashQuote(q));
        uint256 escrow = market.escrowFor(pricePer1k, maxTokens);
        vm.prank(requester);
        try market.open(q, abi.encodePacked(r, s, v)) returns (bytes32 jobId) {
            jobs.push(jobId);
            ghost_in += escrow;
        } catch {}
    }

    function deliver(uint256 seed, uint32 n, uint8 kind) external {
        (bool found, bytes32 jobId) = _pick(seed, JobState.Awarded);
        if (!found) return;
        TokenJob memory j = market.job(jobId);
        kind = uint8(bound(kind, 0, 2));
        n = kind == 0 ? j.maxTokens : uint32(bound(n, 1, j.maxTokens == 0 ? 1 : j.maxTokens));
        bytes memory tokens;
        for (uint256 i; i < n; ++i) {
            // kind 0: full budget; 1: ends with EOS; 2: no EOS (truncated when short: must revert)
            uint32 id = kind == 1 && i + 1 == n ? EOS : uint32(97 + i % 26);
            tokens = abi.encodePacked(tokens, id);
        }
        vm.prank(provider);
        try market.deliver(jobId, tokens) {} catch {}
    }

    function challenge(uint256 seed) external {
        (bool found, bytes32 jobId) = _pick(seed, JobState.Delivered);
        if (!found) return;
        uint256 bond = market.challengeBond();
        vm.prank(challenger);
        try market.challenge(jobId) {
            ghost_in += bond;
        } catch {}
    }

    function vote(uint256 seed, uint8 who, bool faithful) external {
        (bool found, bytes32 jobId) = _pick(seed, JobState.Challenged);
        if (!found) return;
        TokenJob memory before = market.job(jobId);
        vm.prank(reexecutors[who % 3]);
        try market.vote(jobId, faithful) {
            TokenJob memory after_ = market.job(jobId);
            if (after_.state == JobState.Slashed && before.votesUnfaithful == 0 && faithful) {
                ++ghost_slashedWithoutQuorum;
            }
            if (after_.state == JobState.Slashed) ++ghost_slashed;
            if (after_.state == JobState.Settled) ++ghost_settled;
        } catch {}
    }

    function drawAudit(uint256 seed) external {
        (bool found, bytes32 jobId) = _pick(seed, JobState.Delivered);
        if (!found) return;
        try market.drawAudit(jobId) {} catch {}
    }

    function finalize(uint256 seed) external {
        (bool found, bytes32 jobId) = _pick(seed, seed % 2 == 0 ? JobState.Delivered : JobState.Challenged);
        if (!found) return;
        try market.finalize(jobId) {
            if (market.job(jobId).state == JobState.Settled) ++ghost_settled;
        } catch {}
    }

    function expire(uint256 seed) external {
        (bool found, bytes32 jobId) = _pick(seed, JobState.Awarded);
        if (!found) return;
        try market.expire(jobId) {} catch {}
    }

    function withdraw(uint8 who) external {
        address[3] memory accounts = [requester, provider, challenger];
        address account = accounts[who % 3];
        uint256 amount = market.owed(account);
        vm.prank(account);
        try market.withdraw() {
            ghost_out += amount;
        } catch {}
    }

    function warp(uint256 seconds_) external {
        seconds_ = bound(seconds_, 1, 240);
        vm.warp(block.timestamp + seconds_);
        vm.roll(block.number + 1 + seconds_ / 12);
    }
}
