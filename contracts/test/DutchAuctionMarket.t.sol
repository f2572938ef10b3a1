// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {BaseMarketTest} from "./BaseMarket.t.sol";
import {IntentBuilder} from "./utils/IntentBuilder.sol";
import {DutchAuctionMarket} from "../src/DutchAuctionMarket.sol";
import {IDutchAuctionMarket} from "../src/interfaces/IDutchAuctionMarket.sol";
import {IMarket, IMarketEvents} from "../src/interfaces/IMarket.sol";
import {Intent, Job, JobState, MarketParams, AUCTION_DUTCH} from "../src/MarketStructs.sol";

contract DutchAuctionMarketTest is BaseMarketTest {
    using IntentBuilder for Intent;

    IDutchAuctionMarket internal dmarket;

    function _deployMarket(IERC20 token_, MarketParams memory params_) internal override returns (IMarket) {
        return new DutchAuctionMarket(token_, registry, staking, treasury, owner, params_);
    }

    function _intent() internal view override returns (Intent memory) {
        return IntentBuilder.init(requester, modelId).withAuctionType(AUCTION_DUTCH).withStartPrice(5e17);
    }

    /// @dev Fills at posting time, when the price is the start price (tests set startPrice = price).
    function _awardTo(bytes32 jobId, address who, uint96, uint32 latency) internal override {
        vm.prank(who);
        dmarket.fill(jobId, who, latency);
    }

    function _refund(bytes32 jobId) internal override {
        dmarket.refund(jobId);
    }

    function setUp() public override {
        super.setUp();
        dmarket = IDutchAuctionMarket(address(market));
    }

    function _expectRejectedFill(bytes32 jobId, address caller, address who, uint32 latency, bytes memory err)
        internal
    {
        bytes32 before = _fingerprint(jobId);
        vm.prank(caller);
        vm.expectRevert(err);
        dmarket.fill(jobId, who, latency);
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    // ================================================================== post (Dutch specifics)

    function test_post_revertsOnZeroStartPrice() public {
        Intent memory intent = _intent().withStartPrice(0);
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.BadStartPrice.selector, 0, intent.maxPrice)
        );
    }

    function test_post_revertsOnStartPriceAboveMax() public {
        Intent memory intent = _intent().withStartPrice(1e18 + 1);
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.BadStartPrice.selector, 1e18 + 1, 1e18)
        );
    }

    function test_auctionType_isDutch() public view {
        assertEq(market.auctionType(), AUCTION_DUTCH);
    }

    // ================================================================== currentPrice

    function test_currentPrice_risesLinearly() public {
        bytes32 jobId = _post(_intent());
        uint256 t0 = block.timestamp;
        assertEq(dmarket.currentPrice(jobId), 5e17);
        vm.warp(t0 + 30);
        assertEq(dmarket.currentPrice(jobId), 75e16);
        vm.warp(t0 + 59);
        assertEq(dmarket.currentPrice(jobId), uint256(5e17) + uint256(5e17) * 59 / 60);
        vm.warp(t0 + 60);
        assertEq(dmarket.currentPrice(jobId), 1e18);
        assertEq(dmarket.currentPrice(keccak256("none")), 0);
    }

    function testFuzz_currentPrice_withinBoundsAndMonotone(
        uint96 start,
        uint96 maxPrice,
        uint32 window,
        uint32 dt
    ) public {
        maxPrice = uint96(bound(maxPrice, 1, 100e18));
        start = uint96(bound(start, 1, maxPrice));
        window = uint32(bound(window, 1, 3600));
        dt = uint32(bound(dt, 0, window));
        Intent memory intent = _intent().withMaxPrice(maxPrice).withStartPrice(start).withWindow(window)
            .withDeadline(uint64(block.timestamp + window + 100));
        bytes32 jobId = _post(intent);
        uint256 t0 = block.timestamp;
        vm.warp(t0 + dt);
        uint256 p = dmarket.currentPrice(jobId);
        assertGe(p, start);
        assertLe(p, maxPrice);
        if (dt > 0) {
            vm.warp(t0 + dt - 1);
            assertLe(dmarket.currentPrice(jobId), p);
        }
    }

    // ================================================================== fill

    function test_fill_awardsAtCurrentPrice() public {
        bytes32 jobId = _post(_intent());
        vm.warp(block.timestamp + 30);
        vm.expectEmit(address(market));
        emit IMarketEvents.Awarded(jobId, provider, 75e16, 60, 15e17, uint40(block.timestamp + 60));
        vm.prank(solver);
        uint256 price = dmarket.fill(jobId, provider, 60);
        assertEq(price, 75e16);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Awarded));
        assertEq(j.provider, provider);
        assertEq(j.price, 75e16);
        assertEq(staking.lockedFor(provider, jobId), 15e17);
        assertEq(staking.stats(provider).jobsWon, 1);
    }

    function test_fill_revertsWhenFilled() public {
        bytes32 jobId = _post(_intent());
        _awardTo(jobId, provider, 0, 60);
        _expectRejectedFill(
            jobId,
            provider2,
            provider2,
            60,
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Awarded)
        );
    }

    function test_fill_lastSecondOfWindowSucceeds() public {
        bytes32 jobId = _post(_intent());
        vm.warp(market.job(jobId).auctionEnd - 1);
        vm.prank(provider);
        dmarket.fill(jobId, provider, 60);
    }

    function test_fill_revertsAtWindowEnd() public {
        bytes32 jobId = _post(_intent());
        uint40 end = market.job(jobId).auctionEnd;
        vm.warp(end);
        _expectRejectedFill(
            jobId,
            provider,
            provider,
            60,
            abi.encodeWithSelector(IMarketEvents.AuctionClosed.selector, jobId, end)
        );
    }

    function test_fill_revertsWhenNotAuthorized() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedFill(
            jobId,
            stranger,
            provider,
            60,
            abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, provider, stranger)
        );
    }

    function test_fill_revertsOnZeroLatency() public {
        bytes32 jobId = _post(_intent());
        _expectRejectedFill(
            jobId, provider, provider, 0, abi.encodeWithSelector(IMarketEvents.ZeroLatency.selector)
        );
    }

    function test_fill_revertsWhenLatencyOverrunsDeadline() public {
        bytes32 jobId = _post(_intent());
        uint32 room = uint32(market.job(jobId).deadline - block.timestamp);
        _expectRejectedFill(
            jobId,
            provider,
            provider,
            room + 1,
            abi.encodeWithSelector(IMarketEvents.LatencyTooLong.selector, room + 1, room)
        );
        vm.prank(provider);
        dmarket.fill(jobId, provider, room);
    }

    function test_fill_revertsOnInsufficientStake() public {
        bytes32 jobId = _post(_intent().withMinStake(STAKE + 1));
        _expectRejectedFill(
            jobId,
            provider,
            provider,
            60,
            abi.encodeWithSelector(IMarketEvents.InsufficientStake.selector, provider, STAKE, STAKE + 1)
        );
    }

    function test_fill_revertsWhenPaused() public {
        bytes32 jobId = _post(_intent());
        vm.prank(owner);
        market.pause();
        _expectRejectedFill(
            jobId, provider, provider, 60, abi.encodeWithSelector(Pausable.EnforcedPause.selector)
        );
    }

    // ================================================================== Dutch specifics elsewhere

    function test_deliver_revertsOnOpenJob() public {
        Intent memory intent = _intent();
        bytes32 jobId = _post(intent);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Open));
        market.deliver(jobId, out, proof);
    }

    function test_expire_neverFailsOver() public {
        Intent memory intent = _intent().withFailover(true);
        bytes32 jobId = _post(intent);
        _awardTo(jobId, provider, 0, 60);
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
    }

    function test_gas_fill() public {
        bytes32 jobId = _post(_intent());
        vm.prank(solver);
        dmarket.fill(jobId, provider, 60);
    }
}
