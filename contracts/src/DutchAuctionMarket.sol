// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BaseMarket} from "./BaseMarket.sol";
import {IMarket} from "./interfaces/IMarket.sol";
import {IDutchAuctionMarket} from "./interfaces/IDutchAuctionMarket.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {AUCTION_DUTCH, Intent, JobRecord, JobState, MarketParams} from "./MarketStructs.sol";

/// @title DutchAuctionMarket
/// @notice The offered price rises linearly from startPrice to maxPrice over the window; the first
/// provider to fill takes the job at the current price. Only pricing lives here.
contract DutchAuctionMarket is BaseMarket, IDutchAuctionMarket {
    constructor(
        IERC20 token_,
        IModelRegistry registry_,
        IStaking staking_,
        address treasury_,
        address owner_,
        MarketParams memory params_
    ) BaseMarket(token_, registry_, staking_, treasury_, owner_, params_) {}

    /// @inheritdoc IDutchAuctionMarket
    function fill(bytes32 jobId, address provider, uint32 latency)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 price)
    {
        JobRecord storage j = _job(jobId);
        if (j.state != JobState.Open) revert InvalidState(jobId, j.state);
        uint40 end = j.auctionEnd;
        if (block.timestamp >= end) revert AuctionClosed(jobId, end);
        _requireAuthorized(provider);
        if (latency == 0) revert ZeroLatency();
        uint256 deadline = j.deadline;
        // deadline > auctionEnd > now
        if (block.timestamp + latency > deadline) revert LatencyTooLong(latency, deadline - block.timestamp);
        price = _priceAt(j);
        uint256 required = _stakeRequired(j, price);
        _requireStake(provider, required);
        _award(jobId, j, provider, price, latency, required);
    }

    /// @inheritdoc IDutchAuctionMarket
    function refund(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _job(jobId);
        if (j.state != JobState.Open) revert InvalidState(jobId, j.state);
        uint40 end = j.auctionEnd;
        // past the window nobody can fill any more
        if (block.timestamp < end) revert AuctionNotEnded(jobId, end);
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    /// @inheritdoc IDutchAuctionMarket
    function currentPrice(bytes32 jobId) external view returns (uint256) {
        JobRecord storage j = _job(jobId);
        if (j.state == JobState.None) return 0;
        return _priceAt(j);
    }

    /// @inheritdoc BaseMarket
    function auctionType() public pure override(BaseMarket, IMarket) returns (uint8) {
        return AUCTION_DUTCH;
    }

    /// @inheritdoc BaseMarket
    function _checkPricing(Intent calldata intent) internal pure override {
        if (intent.startPrice == 0 || intent.startPrice > intent.maxPrice) {
            revert BadStartPrice(intent.startPrice, intent.maxPrice);
        }
    }

    /// @inheritdoc BaseMarket
    function _opened(bytes32) internal pure override {}

    /// @inheritdoc BaseMarket
    function _failover(bytes32, JobRecord storage, address) internal pure override returns (bool) {
        return false;
    }

    /// @dev startPrice + (maxPrice - startPrice) * elapsed / window, floor-rounded; maxPrice after the window.
    function _priceAt(JobRecord storage j) private view returns (uint256) {
        uint256 start = j.startPrice;
        uint256 maxPrice = j.maxPrice;
        uint256 postedAt = j.postedAt;
        uint256 end = j.auctionEnd;
        if (block.timestamp >= end) return maxPrice;
        // postedAt <= now < end, start <= maxPrice < 2**96
        return start + (maxPrice - start) * (block.timestamp - postedAt) / (end - postedAt);
    }
}
