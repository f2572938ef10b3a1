// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Vm} from "../utils/Vm.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {TestToken} from "../../src/TestToken.sol";
import {IStaking} from "../../src/interfaces/IStaking.sol";
import {IReverseAuctionMarket} from "../../src/interfaces/IReverseAuctionMarket.sol";
import {AuctionTerms, Bid, Intent, JobState} from "../../src/MarketStructs.sol";

/// @notice The bid reservations (issue 14, finding 2) stay exact while bids push each other off the books: a
/// newcomer's bid reserves the job's largest lock and releases the runner-up it pushed off in the same Staking
/// call (`reserve`), a provider improving its own bid reserves nothing, and the award or refund releases the
/// books. Attacked here: a release of more or less than was reserved, a reservation left behind by a pushed-off
/// bid, stake created or lost, and events that do not add up to Staking's books (Staking logs no reservation:
/// the market's `BidPlaced` names the newcomer and the runner-up it pushed out, `Awarded` / `Refunded` the book).
contract ReservationsTest is AdversarialBase {
    using IntentBuilder for Intent;

    uint256 internal constant JOBS = 2;
    uint256 internal constant BIDS = 24;

    TestToken internal tt;
    World internal w;
    address[5] internal bidders;
    bytes32[JOBS] internal jobs;
    uint256[JOBS] internal reservation;
    /// @dev Reserved minus released per bidder, as Staking's events of the successful calls tell it.
    int256[5] internal net;

    function setUp() public {
        _deployCore();
        tt = new TestToken("Tender USD", "TUSD", 18);
        w = _world(IERC20(address(tt)), tt.mint);
        // 100, 100, 100 (fixture), 300 and 60 staked: the 60 fits one book of job 1 only
        bidders = [provider, provider2, provider3, _staker("big", 300e18), _staker("thin", 60e18)];
        uint96[JOBS] memory minStakes = [uint96(60e18), uint96(40e18)];
        for (uint256 k; k < JOBS; ++k) {
            Intent memory intent =
                IntentBuilder.init(requester, modelId).withMinStake(minStakes[k]).withNonce(k);
            vm.prank(requester);
            jobs[k] = w.reverse.post(intent);
            // max(minStake, maxPrice * stakeMultiple): the most the job's award can lock
            uint256 r = uint256(intent.maxPrice) * _terms(jobs[k]).stakeMultiple;
            reservation[k] = r < minStakes[k] ? minStakes[k] : r;
        }
    }

    function _staker(string memory name, uint256 amount) internal returns (address who) {
        who = makeAddr(name);
        tt.mint(who, amount);
        vm.startPrank(who);
        tt.approve(address(w.staking), amount);
        w.staking.stake(amount);
        vm.stopPrank();
    }

    /// @dev Every bidder's `locked` is exactly the reservations of the books it stands on plus its job locks;
    /// the stake in Staking is exactly what was staked (nothing created, nothing lost).
    function _assertExact(string memory when) internal view {
        // each job's book read once (only an Open job's book holds reservations)
        address[JOBS] memory best;
        address[JOBS] memory runner;
        for (uint256 k; k < JOBS; ++k) {
            if (w.reverse.job(jobs[k]).state == JobState.Open) {
                (best[k], runner[k]) =
                (w.reverse.bestBid(jobs[k]).provider, w.reverse.runnerUp(jobs[k]).provider);
            }
        }
        uint256 staked;
        for (uint256 i; i < bidders.length; ++i) {
            address p = bidders[i];
            uint256 expected;
            for (uint256 k; k < JOBS; ++k) {
                if (best[k] == p) expected += reservation[k];
                if (runner[k] == p) expected += reservation[k];
                expected += w.staking.lockedFor(p, jobs[k]);
            }
            uint256 locked = w.staking.lockedOf(p);
            uint256 stake = w.staking.stakeOf(p);
            assertEq(locked, expected, when);
            assertLe(locked, stake, when);
            staked += stake;
        }
        assertEq(staked, 3 * STAKE + 360e18, "stake created or lost");
        assertEq(tt.balanceOf(address(w.staking)), staked, "Staking's balance is not the stake");
    }

    /// @dev Adds to `net` what the successful call's events say (the logs since `_recordLogs`; a reverted
    /// call's logs are recorded too and dropped): a `BidPlaced` by a provider that was not on the book
    /// (`best`, `runner` before the bid) reserved `r`, and its `pushedOut`, which must be that runner-up, got `r`
    /// back. Staking itself logs no reservation.
    function _countBid(bool succeeded, address best, address runner, uint256 r) internal {
        Vm.Log[] memory logs = _recordedLogs();
        if (!succeeded) return;
        for (uint256 l; l < logs.length; ++l) {
            assertFalse(
                logs[l].emitter == address(w.staking)
                    && logs[l].topics[0] != IStaking.UnstakingReclaimed.selector,
                "Staking logged a reservation"
            );
            if (logs[l].topics[0] != IReverseAuctionMarket.BidPlaced.selector) continue;
            address who = address(uint160(uint256(logs[l].topics[2])));
            (,,, address pushedOut) = abi.decode(logs[l].data, (uint256, uint32, uint8, address));
            if (who == best || who == runner) {
                assertEq(pushedOut, address(0), "a provider on the book pushed someone out");
                continue;
            }
            assertEq(pushedOut, runner, "the newcomer pushed out someone other than the runner-up");
            _add(who, int256(r));
            if (pushedOut != address(0)) _add(pushedOut, -int256(r));
        }
    }

    /// @dev The award or refund of a job whose book was (`best`, `runner`) released both reservations.
    function _countBook(address best, address runner, uint256 r) internal {
        if (best != address(0)) _add(best, -int256(r));
        if (runner != address(0)) _add(runner, -int256(r));
    }

    function _add(address who, int256 amount) internal {
        for (uint256 i; i < bidders.length; ++i) {
            if (bidders[i] == who) net[i] += amount;
        }
    }

    /// @dev Random bids by five bidders on two books (refused ones included: not better, or not enough free
    /// stake), then one job awarded and the other refunded. After every step the reservations are exact, and
    /// the events add up to them.
    function testFuzz_reservations_exactUnderPushoutsReplacesAndAwards(uint256 seed) public {
        AuctionTerms[JOBS] memory terms;
        for (uint256 k; k < JOBS; ++k) {
            terms[k] = _terms(jobs[k]);
        }
        uint256 maxLatency = terms[0].deadline - terms[0].auctionEnd;
        for (uint256 s; s < BIDS; ++s) {
            uint256 r = uint256(keccak256(abi.encode(seed, s)));
            bytes32 jobId = jobs[r % JOBS];
            address p = bidders[(r >> 8) % bidders.length];
            // a narrow price range makes bids collide, replace and push each other off often
            uint96 price = uint96(1e17 + ((r >> 16) % 64) * 1e16);
            uint32 latency = uint32(1 + ((r >> 32) % maxLatency));
            (address best, address runner) =
                (w.reverse.bestBid(jobId).provider, w.reverse.runnerUp(jobId).provider);
            uint256 rk = reservation[r % JOBS];
            _recordLogs();
            vm.prank(p);
            // a refused bid changes nothing (checked by `_assertExact` all the same)
            try w.reverse.bid(jobId, terms[r % JOBS], Bid(p, price, latency)) {
                _countBid(true, best, runner, rk);
            } catch {
                _countBid(false, best, runner, rk);
            }
            _assertExact("after a bid");
        }
        vm.warp(terms[0].auctionEnd);
        if (w.reverse.bestBid(jobs[0]).provider != address(0)) {
            _countBook(
                w.reverse.bestBid(jobs[0]).provider, w.reverse.runnerUp(jobs[0]).provider, reservation[0]
            );
            _awardOn(w.reverse, jobs[0]);
            // the reservation covered the award: nobody was skipped or penalised
            assertEq(uint256(w.reverse.job(jobs[0]).state), uint256(JobState.Awarded));
            assertLe(w.staking.lockedFor(w.reverse.job(jobs[0]).provider, jobs[0]), reservation[0]);
        }
        _assertExact("after the award");
        vm.warp(terms[1].deadline);
        _countBook(w.reverse.bestBid(jobs[1]).provider, w.reverse.runnerUp(jobs[1]).provider, reservation[1]);
        _refundOn(w.reverse, jobs[1]);
        _assertExact("after the refund");
        // the events tell the same story as Staking's books: every reservation was released, and what is left
        // locked is job 0's lock only
        address winner = w.reverse.job(jobs[0]).provider;
        for (uint256 i; i < bidders.length; ++i) {
            assertTrue(net[i] == 0, "reserved and released amounts differ");
            uint256 lock = bidders[i] == winner ? w.staking.lockedFor(winner, jobs[0]) : 0;
            assertEq(w.staking.lockedOf(bidders[i]), lock);
        }
        for (uint256 i; i < 3; ++i) {
            assertEq(w.staking.claimable(bidders[i]), 0, "nobody penalised");
        }
    }

    /// @dev The push-out itself: the newcomer's reservation and the pushed-off runner-up's release are the same
    /// amount, in one call, logged by one event (`BidPlaced.pushedOut`).
    function test_pushout_newcomerReservesWhatThePushedOffRunnerUpGetsBack() public {
        bytes32 jobId = jobs[0];
        uint256 r = reservation[0];
        _bidOn(w.reverse, jobId, provider, Bid(provider, 3e17, 60));
        _bidOn(w.reverse, jobId, provider2, Bid(provider2, 6e17, 60));
        uint256 freeBefore = w.staking.availableOf(provider2);
        vm.expectEmit(address(w.reverse));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider3, provider3, 5e17, 60, 2, provider2);
        _bidOn(w.reverse, jobId, provider3, Bid(provider3, 5e17, 60));
        assertEq(w.reverse.runnerUp(jobId).provider, provider3);
        assertEq(w.staking.availableOf(provider2), freeBefore + r, "the pushed-off runner-up got it all back");
        assertEq(w.staking.lockedOf(provider2), 0);
        assertEq(w.staking.lockedOf(provider3), r);
        // a new leader pushes provider3 off: the old leader becomes the runner-up, keeping its reservation
        vm.expectEmit(address(w.reverse));
        emit IReverseAuctionMarket.BidPlaced(jobId, provider2, provider2, 1e17, 60, 1, provider3);
        _bidOn(w.reverse, jobId, provider2, Bid(provider2, 1e17, 60));
        assertEq(w.reverse.bestBid(jobId).provider, provider2);
        assertEq(w.reverse.runnerUp(jobId).provider, provider);
        assertEq(w.staking.lockedOf(provider3), 0);
        assertEq(w.staking.lockedOf(provider), r);
        assertEq(w.staking.lockedOf(provider2), r);
        _assertExact("after the push-outs");
    }

    /// @dev Only a market may reserve or release through `reserve`: a stranger can neither freeze a provider's
    /// stake nor free a reservation (which would let reserved stake be unstaked).
    function test_reserve_byStranger_refused() public {
        _bidOn(w.reverse, jobs[0], provider, Bid(provider, 3e17, 60));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IStaking.NotMarket.selector, stranger));
        w.staking.reserve(provider2, provider, reservation[0]);
        assertEq(w.staking.lockedOf(provider), reservation[0]);
        assertEq(w.staking.lockedOf(provider2), 0);
    }
}
