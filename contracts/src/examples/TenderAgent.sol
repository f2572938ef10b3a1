// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IMarket} from "../interfaces/IMarket.sol";
import {ITenderConsumer} from "../interfaces/ITenderConsumer.sol";
import {Intent} from "../MarketStructs.sol";

/// @title TenderAgent
/// @notice Example consumer: an on-chain agent that buys inference. It holds payment tokens, posts intents
/// as their requester (so refunds and compensation come back here) and stores the verified output the
/// market pushes on settlement. Set `callbackGasLimit` to ~80k + 25k per output element.
contract TenderAgent is ITenderConsumer, Ownable2Step {
    using SafeERC20 for IERC20;

    IMarket public immutable market;
    IERC20 public immutable token;

    mapping(bytes32 jobId => uint256[]) private _results;
    mapping(bytes32 jobId => bool) private _answered;

    event Asked(bytes32 indexed jobId, bytes32 indexed modelId, uint256 maxPrice);
    event ResultReceived(bytes32 indexed jobId, uint256[] output);
    event Withdrawn(address indexed to, uint256 amount);

    error NotMarket(address caller);
    error NotRequester(address requester);
    error NoResult(bytes32 jobId);

    constructor(IMarket market_, address owner_) Ownable(owner_) {
        market = market_;
        token = IERC20(market_.token());
    }

    /// @notice Posts `intent` (requester must be this contract), paying the escrow from this balance.
    function ask(Intent calldata intent) external onlyOwner returns (bytes32 jobId) {
        if (intent.requester != address(this)) revert NotRequester(intent.requester);
        token.forceApprove(address(market), market.escrowFor(intent.maxPrice));
        jobId = market.post(intent);
        emit Asked(jobId, intent.modelId, intent.maxPrice);
    }

    /// @inheritdoc ITenderConsumer
    function onTenderResult(bytes32 jobId, uint256[] calldata output) external {
        if (msg.sender != address(market)) revert NotMarket(msg.sender);
        _results[jobId] = output;
        _answered[jobId] = true;
        emit ResultReceived(jobId, output);
    }

    /// @notice Sends tokens (refunds, compensation, unspent budget) to `to`.
    function withdraw(address to, uint256 amount) external onlyOwner {
        emit Withdrawn(to, amount);
        token.safeTransfer(to, amount);
    }

    /// @notice Whether the market delivered a result for `jobId`.
    function answered(bytes32 jobId) external view returns (bool) {
        return _answered[jobId];
    }

    /// @notice The stored result; reverts `NoResult` before settlement.
    function result(bytes32 jobId) external view returns (uint256[] memory) {
        if (!_answered[jobId]) revert NoResult(jobId);
        return _results[jobId];
    }
}
