// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TenderFixture} from "../utils/TenderFixture.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";
import {ReverseAuctionMarket} from "../../src/ReverseAuctionMarket.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {IDutchAuctionMarket} from "../../src/interfaces/IDutchAuctionMarket.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {AuctionTerms, DisputeTerms, Job, JobState, JobTerms, MarketParams} from "../../src/MarketStructs.sol";

/// @notice Protocol invariants over both auction types sharing one Staking, driven by `MarketHandler`.
/// Each invariant reads the contracts' own accounting and the handler's ghost record; the handler counts
/// per-call breaches (exact token flows, who won, which edges were taken) that are asserted here.
/// forge-config: default.invariant.runs = 24
/// forge-config: default.invariant.depth = 96
/// forge-config: deep.invariant.runs = 512
/// forge-config: deep.invariant.depth = 128
contract MarketInvariantsTest is TenderFixture {
    uint256 internal constant BPS = 10_000;

    ReverseAuctionMarket internal reverse;
    DutchAuctionMarket internal dutch;
    MarketHandler internal handler;

    function setUp() public {
        _deployCore();
        // dispute windows shorter than the fixture's, so that disputes resolve within a run's depth
        MarketParams memory params = _defaultParams();
        params.challengeWindow = 300;
        params.proofWindow = 150;
        reverse = new ReverseAuctionMarket(token, registry, staking, treasury, owner, params);
        dutch = new DutchAuctionMarket(token, registry, staking, treasury, owner, params);
        vm.startPrank(owner);
        // short enough that unstaking completes within a campaign
        staking.setUnstakingDelay(10 minutes);
        staking.setMarket(address(reverse), true);
        _activate(staking, address(reverse));
        staking.setMarket(address(dutch), true);
        _activate(staking, address(dutch));
        vm.stopPrank();

        handler = new MarketHandler(
            MarketHandler.Deps({
                token: token,
                staking: staking,
                reverse: IReverseAuctionMarket(address(reverse)),
                dutch: IDutchAuctionMarket(address(dutch)),
                models: [modelId, auditedModelId, zkOnlyModelId],
                providers: [provider, provider2, provider3],
                solver: solver,
                owner: owner,
                treasury: treasury
            })
        );

        bytes4[] memory selectors = new bytes4[](24);
        selectors[0] = MarketHandler.post.selector;
        selectors[1] = MarketHandler.submitSigned.selector;
        selectors[2] = MarketHandler.reuseNonce.selector;
        selectors[3] = MarketHandler.invalidateNonces.selector;
        selectors[4] = MarketHandler.bid.selector;
        selectors[5] = MarketHandler.award.selector;
        selectors[6] = MarketHandler.fill.selector;
        selectors[7] = MarketHandler.deliver.selector;
        selectors[8] = MarketHandler.challenge.selector;
        selectors[9] = MarketHandler.prove.selector;
        selectors[10] = MarketHandler.finalize.selector;
        selectors[11] = MarketHandler.expire.selector;
        selectors[12] = MarketHandler.refund.selector;
        selectors[13] = MarketHandler.grief.selector;
        selectors[14] = MarketHandler.stake.selector;
        selectors[15] = MarketHandler.unstake.selector;
        selectors[16] = MarketHandler.redeem.selector;
        selectors[17] = MarketHandler.setParams.selector;
        selectors[18] = MarketHandler.warp.selector;
        selectors[19] = MarketHandler.warpToBoundary.selector;
        selectors[20] = MarketHandler.progress.selector;
        selectors[21] = MarketHandler.withdrawFees.selector;
        selectors[22] = MarketHandler.withdrawOwed.selector;
        selectors[23] = MarketHandler.drawAudit.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    // ------------------------------------------------------------------ 1. conservation

    /// @notice The markets hold exactly the escrow of their unfinished jobs plus open challenge bonds plus
    /// the fees owed to the treasury (accrued at settlement until `withdrawFees`) plus what they owe
    /// accounts (credited at settlement, refund and slash until `withdraw`, or spent on a later escrow or
    /// bond); that owed total is the ghost total of credits less what was spent and withdrawn. A slash
    /// never moves a token: it is credited in Staking (`claimable`). Staking holds exactly its providers'
    /// stakes plus the unclaimed claims, and no token leaves the known accounts.
    function invariant_tokenConservation() public view {
        uint256 live;
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (!_terminal(j.state)) live += _escrow(j);
            if (j.state == JobState.Challenged) live += j.challengeBond;
        }
        live += reverse.feesOwed() + dutch.feesOwed();
        uint256 owedTotal = _owedTotal();
        uint256 held = token.balanceOf(address(reverse)) + token.balanceOf(address(dutch));
        assertEq(held, live + owedTotal, "markets != open escrow + bonds + fees owed + owed");
        assertEq(held, handler.ghostMarketBalance(), "markets != ghost flows");
        assertEq(owedTotal, handler.ghostOwed(), "owed != credits - spent - withdrawn");
        assertEq(
            handler.ghost_escrowed() + handler.ghost_bondsIn(),
            handler.ghost_pulled() + handler.ghost_owedSpent(),
            "escrows and bonds != pulled + paid from credit"
        );

        address[3] memory ps = handler.providerList();
        uint256 stakes;
        for (uint256 i; i < 3; ++i) {
            stakes += staking.stakeOf(ps[i]);
        }
        // slashed stake stays in Staking as claims until claimed
        address[14] memory accounts = handler.trackedAccounts();
        uint256 claims;
        for (uint256 i; i < accounts.length; ++i) {
            claims += staking.claimable(accounts[i]);
        }
        assertEq(token.balanceOf(address(staking)), stakes + claims, "staking != stakes + claims");
        assertEq(token.balanceOf(address(staking)), handler.ghostStakingBalance(), "staking != ghost flows");
        assertEq(stakes, handler.ghostStakes(), "stakes != ghost flows");
        assertEq(claims, handler.ghost_compensated() - handler.ghost_claimed(), "claims != compensation");

        uint256 known = token.balanceOf(requester) + token.balanceOf(challenger) + token.balanceOf(stranger);
        for (uint256 i; i < accounts.length; ++i) {
            known += token.balanceOf(accounts[i]);
        }
        assertEq(token.totalSupply(), known, "tokens left the known accounts");
        _noViolation(MarketHandler.Inv.Conservation);
    }

    // ------------------------------------------------------------------ 2. one payout

    /// @notice A job settles at most once, only settled jobs pay a provider, and a requester's net cost
    /// is at most maxPrice plus the fee on it (nothing at all unless it settled).
    function invariant_intentPaysOutAtMostOnce() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            Job memory j = handler.jobOf(id);
            assertLe(info.payouts, 1, "paid twice");
            assertTrue((info.payouts == 1) == (j.state == JobState.Settled), "payout without settlement");
            assertLe(info.refunded, info.escrow, "refunded more than escrowed");
            assertLe(info.escrow - info.refunded, _escrow(j), "paid more than max price + fee");
            if (j.state == JobState.Settled) {
                assertEq(
                    info.escrow - info.refunded, j.price + j.price * j.feeBps / BPS, "net cost != price + fee"
                );
            } else if (_terminal(j.state)) {
                assertEq(info.refunded, info.escrow, "unsettled job not fully refunded");
            }
        }
        _noViolation(MarketHandler.Inv.PayOnce);
    }

    // ------------------------------------------------------------------ 3. slashing bounded by the lock

    /// @notice Each provider's total lock is the sum of its live jobs' locks and its standing bids' reservations; finished jobs lock nothing;
    /// no slash took more than the job's lock or touched unlocked stake (checked per call by the handler).
    function invariant_slashNeverExceedsJobLock() public view {
        address[3] memory ps = handler.providerList();
        uint256[3] memory sum;
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (j.state == JobState.Open && address(handler.jobInfo(id).market) == address(reverse)) {
                // a standing bid on the book reserves max(minStake, maxPrice * stakeMultiple)
                uint256 reserved = uint256(j.maxPrice) * j.stakeMultiple;
                if (reserved < j.minStake) reserved = j.minStake;
                address best = reverse.bestBid(id).provider;
                address runner = reverse.runnerUp(id).provider;
                for (uint256 k; k < 3; ++k) {
                    if (ps[k] == best) sum[k] += reserved;
                    if (ps[k] == runner) sum[k] += reserved;
                }
            }
            if (j.provider == address(0)) continue;
            uint256 lockedFor = staking.lockedFor(j.provider, id);
            if (_terminal(j.state)) {
                assertEq(lockedFor, 0, "finished job still locked");
            } else {
                assertEq(lockedFor, j.stakeLocked, "job lock != staking lock");
                for (uint256 k; k < 3; ++k) {
                    if (ps[k] == j.provider) sum[k] += lockedFor;
                }
            }
        }
        for (uint256 k; k < 3; ++k) {
            assertEq(staking.lockedOf(ps[k]), sum[k], "lockedOf != live job locks + bid reservations");
        }
        _noViolation(MarketHandler.Inv.Slash);
    }

    // ------------------------------------------------------------------ 4. liveness

    /// @notice Past every deadline, permissionless calls alone (award, finalize, expire, refund, by a
    /// stranger) bring every job to a terminal state, after which the markets hold nothing and no stake
    /// stays locked. Runs on a snapshot so that the campaign continues from the real state.
    function invariant_jobsTerminateWithPermissionlessCalls() public {
        uint256 snap = vm.snapshotState();
        uint256 n = handler.jobCount();
        uint256 t = handler.now_();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (j.deadline > t) t = j.deadline;
            if (j.disputeEnd > t) t = j.disputeEnd;
        }
        MarketParams memory p = reverse.params();
        MarketParams memory q = dutch.params();
        t += _max(p.challengeWindow, q.challengeWindow) + _max(p.proofWindow, q.proofWindow) + 1;
        _driveAll(t, n, p.proofWindow > q.proofWindow ? p.proofWindow : q.proofWindow);
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            assertTrue(_terminal(handler.jobInfo(id).market.job(id).state), "job stuck after its deadlines");
        }
        // only the fees and the credits stay; withdrawFees and everyone's withdraw empty the markets
        reverse.withdrawFees();
        dutch.withdrawFees();
        address[14] memory accounts = handler.trackedAccounts();
        IMarket[2] memory ms = [IMarket(address(reverse)), IMarket(address(dutch))];
        for (uint256 m; m < 2; ++m) {
            for (uint256 i; i < accounts.length; ++i) {
                uint256 owed = ms[m].owed(accounts[i]);
                if (owed == 0) continue;
                vm.prank(accounts[i]);
                assertEq(ms[m].withdraw(), owed, "withdraw paid other than owed");
            }
        }
        assertEq(
            token.balanceOf(address(reverse)) + token.balanceOf(address(dutch)), 0, "markets kept tokens"
        );
        address[3] memory ps = handler.providerList();
        for (uint256 k; k < 3; ++k) {
            assertEq(staking.lockedOf(ps[k]), 0, "stake still locked");
        }
        vm.revertToState(snap);
        _noViolation(MarketHandler.Inv.Terminal);
    }

    // ------------------------------------------------------------------ 5. unstaking

    /// @notice Stake covers what is locked plus what is unstaking; redemptions only happened after the
    /// unstaking delay and never reached locked stake (checked per call by the handler).
    function invariant_stakeNotWithdrawnWhileLocked() public view {
        address[3] memory ps = handler.providerList();
        for (uint256 k; k < 3; ++k) {
            (uint256 unstaking,) = staking.unstakingOf(ps[k]);
            assertGe(
                staking.stakeOf(ps[k]), staking.lockedOf(ps[k]) + unstaking, "stake < locked + unstaking"
            );
        }
        _noViolation(MarketHandler.Inv.Unstake);
    }

    // ------------------------------------------------------------------ 6. auction outcome

    /// @notice Every award went to the best score among the bids (or, when it could not lock its stake,
    /// the runner-up), paid between its own bid and maxPrice; Dutch fills at the curve's price.
    function invariant_auctionWinnerIsBestAndPaidWithinBounds() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            Job memory j = handler.jobOf(id);
            if (j.provider == address(0)) continue;
            assertLe(j.price, j.maxPrice, "paid above max price");
            assertGt(j.price, 0);
            if (!info.reverse) assertGe(j.price, j.startPrice, "Dutch price below start");
        }
        _noViolation(MarketHandler.Inv.Auction);
    }

    // ------------------------------------------------------------------ 7. state machine

    /// @notice Every job is in the state the handler last saw (nothing moved unobserved), and every move
    /// the handler saw was a documented forward edge.
    function invariant_statesOnlyMoveForward() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            assertEq(uint256(info.market.job(id).state), uint256(info.prev), "state moved unobserved");
        }
        _noViolation(MarketHandler.Inv.Transition);
    }

    // ------------------------------------------------------------------ 8. honest provers

    /// @notice A provider whose valid proof was accepted before its deadline ends Settled and was never
    /// slashed for that job; valid in-time proofs were never refused and invalid ones never accepted.
    function invariant_validProofNeverSlashed() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            if (!info.validProof) continue;
            Job memory j = handler.jobOf(id);
            assertEq(uint256(j.state), uint256(JobState.Settled), "proven job not settled");
            assertEq(info.slashed, 0, "proven provider slashed");
            assertEq(staking.lockedFor(j.provider, id), 0, "proven provider still locked");
        }
        _noViolation(MarketHandler.Inv.HonestProver);
    }

    // ------------------------------------------------------------------ 9. exact splits

    /// @notice All escrow ever taken (pulled or paid from credit) is either still held for unfinished jobs
    /// or was credited as price or refund or accrued as fee, to the unit; each split was checked per call
    /// (fee floored, dust to the requester).
    function invariant_escrowSplitsSumExactly() public view {
        uint256 open;
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            if (!_terminal(info.market.job(id).state)) open += info.escrow;
        }
        assertEq(
            handler.ghost_escrowed(),
            handler.ghost_paid() + handler.ghost_fees() + handler.ghost_refunded() + open,
            "escrow != price + fee + refund + open"
        );
        _noViolation(MarketHandler.Inv.Split);
    }

    // ------------------------------------------------------------------ 10. nonces

    /// @notice Each market's nonce bitmap equals the handler's mirror (bits only ever set: every nonce
    /// used or cancelled stays so), and no used or cancelled nonce ever opened a job.
    function invariant_noncesNeverReused() public view {
        address[3] memory rs = handler.requesterList();
        IMarket[2] memory ms = [IMarket(address(reverse)), IMarket(address(dutch))];
        for (uint256 m; m < 2; ++m) {
            for (uint256 r; r < 3; ++r) {
                for (uint256 w; w < 3; ++w) {
                    assertEq(
                        ms[m].nonceBitmap(rs[r], w),
                        handler.ghost_nonceBits(address(ms[m]), rs[r], w),
                        "nonce bitmap != ghost"
                    );
                }
            }
        }
        _noViolation(MarketHandler.Inv.Nonce);
    }

    // ------------------------------------------------------------------ 11. promised time

    /// @notice No award (best, runner-up, failover) ever left its provider less time than it promised:
    /// awardedAt + latency <= deadline for every job with a provider.
    function invariant_noAwardLeavesLessTimeThanPromised() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (j.provider == address(0)) continue;
            assertLe(uint256(j.awardedAt) + j.latency, j.deadline, "awarded with less time than promised");
        }
        _noViolation(MarketHandler.Inv.Time);
    }

    // ------------------------------------------------------------------ 12. collateral

    /// @notice Every winner's lock covers the price it is paid times the job's stake multiple (and the
    /// requester's minStake): second-score payment never runs on first-price collateral.
    function invariant_lockCoversPriceTimesStakeMultiple() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (j.provider == address(0)) continue;
            assertGe(j.stakeLocked, uint256(j.price) * j.stakeMultiple, "lock < price * stakeMultiple");
            assertGe(j.stakeLocked, j.minStake, "lock < minStake");
        }
    }

    // ------------------------------------------------------------------ 13. terminal states, token blocked

    /// @notice Even when the token refuses every transfer (as a blocklist refusing Staking and every payee
    /// would), permissionless calls alone bring every job to a terminal state and release every lock:
    /// nothing on the way to a terminal state moves a token.
    function invariant_jobsTerminateWhenTheTokenBlocksEveryTransfer() public {
        uint256 snap = vm.snapshotState();
        vm.mockCallRevert(address(token), abi.encodeWithSelector(token.transfer.selector), "blocked");
        vm.mockCallRevert(address(token), abi.encodeWithSelector(token.transferFrom.selector), "blocked");
        uint256 n = handler.jobCount();
        uint256 t = handler.now_();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            Job memory j = handler.jobOf(id);
            if (j.deadline > t) t = j.deadline;
            if (j.disputeEnd > t) t = j.disputeEnd;
        }
        MarketParams memory p = reverse.params();
        MarketParams memory q = dutch.params();
        t += _max(p.challengeWindow, q.challengeWindow) + _max(p.proofWindow, q.proofWindow) + 1;
        _driveAll(t, n, _max(p.proofWindow, q.proofWindow));
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            assertTrue(_terminal(handler.jobInfo(id).market.job(id).state), "job stuck while transfers fail");
        }
        address[3] memory ps = handler.providerList();
        for (uint256 k; k < 3; ++k) {
            assertEq(staking.lockedOf(ps[k]), 0, "stake still locked");
        }
        vm.clearMockedCalls();
        vm.revertToState(snap);
    }

    // ------------------------------------------------------------------ 14. owner changes

    /// @notice Parameter changes never reach a live job: its fee, stake multiple and dispute terms (bond,
    /// windows, challenger reward) stay those in force when it was posted.
    function invariant_ownerChangesNeverTouchLiveJobTerms() public view {
        uint256 n = handler.jobCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.jobIds(i);
            MarketHandler.JobInfo memory info = handler.jobInfo(id);
            Job memory j = handler.jobOf(id);
            assertEq(j.feeBps, info.feeBps, "fee changed");
            assertEq(j.stakeMultiple, info.stakeMultiple, "stake multiple changed");
            DisputeTerms memory d = info.market.disputeTerms(id);
            assertEq(d.challengeBond, info.terms.challengeBond, "challenge bond changed");
            assertEq(d.challengeWindow, info.terms.challengeWindow, "challenge window changed");
            assertEq(d.proofWindow, info.terms.proofWindow, "proof window changed");
            assertEq(d.challengerRewardBps, info.terms.challengerRewardBps, "challenger reward changed");
            if (j.challenger != address(0)) {
                assertEq(j.challengeBond, info.terms.challengeBond, "bond taken");
            }
        }
        _noViolation(MarketHandler.Inv.Terms);
    }

    // ------------------------------------------------------------------ 15. reputation

    /// @notice Reputation counters grow only with paid jobs: jobsWon counts exactly the awards, and
    /// deliveredInTime exactly the settlements, whose protocol fee reached Staking's minCountedFee.
    function invariant_reputationOnlyFromPaidSettledJobs() public view {
        address[3] memory ps = handler.providerList();
        for (uint256 k; k < 3; ++k) {
            IStaking.Stats memory st = staking.stats(ps[k]);
            assertEq(st.jobsWon, handler.ghost_countedWins(ps[k]), "jobsWon != paid awards");
            assertEq(
                st.deliveredInTime, handler.ghost_countedSettles(ps[k]), "deliveredInTime != paid settlements"
            );
            assertLe(st.deliveredInTime, st.jobsWon, "more settled than won");
        }
        _noViolation(MarketHandler.Inv.Reputation);
    }

    // ------------------------------------------------------------------ helpers

    /// @dev From time `t`: two passes of permissionless calls, a block apart (audit draws need the next
    /// block's hash); then, past any proof window an audit drawn by `finalize` opened, two more.
    function _driveAll(uint256 t, uint256 n, uint256 proofWindow) internal {
        address keeper = makeAddr("keeper");
        for (uint256 round; round < 2; ++round) {
            vm.warp(t);
            for (uint256 pass; pass < 2; ++pass) {
                vm.roll(block.number + 2);
                for (uint256 i; i < n; ++i) {
                    _drive(keeper, handler.jobIds(i));
                }
            }
            t += proofWindow + 1;
        }
    }

    function _drive(address keeper, bytes32 id) internal {
        IMarket m = handler.jobInfo(id).market;
        if (_terminal(m.job(id).state)) return;
        (AuctionTerms memory t, JobTerms memory jt) = handler.termsOf(id);
        vm.startPrank(keeper);
        if (address(m) == address(reverse)) {
            try reverse.award(id, t, jt) {} catch {}
        }
        try m.finalize(id) {} catch {}
        try m.expire(id) {} catch {}
        try m.expire(id) {} catch {}
        if (address(m) == address(reverse)) {
            try reverse.refund(id, t, jt) {} catch {}
        } else {
            try dutch.refund(id) {} catch {}
        }
        vm.stopPrank();
    }

    /// @dev What both markets owe every tracked account together (no one else is ever credited).
    function _owedTotal() internal view returns (uint256 total) {
        address[14] memory accounts = handler.trackedAccounts();
        for (uint256 i; i < accounts.length; ++i) {
            total += reverse.owed(accounts[i]) + dutch.owed(accounts[i]);
        }
    }

    function _noViolation(MarketHandler.Inv k) internal view {
        assertEq(handler.violations(uint256(k)), 0, handler.firstViolation(uint256(k)));
    }

    function _terminal(JobState s) internal pure returns (bool) {
        return uint8(s) >= uint8(JobState.Settled);
    }

    function _escrow(Job memory j) internal pure returns (uint256) {
        return uint256(j.maxPrice) + uint256(j.maxPrice) * j.feeBps / BPS;
    }

    function _max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }
}
