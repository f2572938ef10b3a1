// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IMarket} from "../interfaces/IMarket.sol";
import {IStaking} from "../interfaces/IStaking.sol";
import {ITenderConsumer} from "../interfaces/ITenderConsumer.sol";
import {Intent} from "../MarketStructs.sol";

/// @title TenderAgent
/// @notice Example consumer: an on-chain agent that buys inference. It holds payment tokens (sent to it,
/// or pulled from a funder with `fund`), posts intents as their requester (so refunds and compensation
/// are owed to it) and stores the verified output the market pushes on settlement. It can use one market
/// per auction type (the constructor's, plus any the owner adds with `addMarket`); `ask` sends an intent
/// to the market of its `auctionType`. Refunds stay in each market as the agent's balance there (`owed`),
/// which pays later escrows first; `withdrawFrom` brings them back here (`claimFrom` the compensation
/// Staking credits it) and the owner takes tokens out with `sweep`. Set `callbackGasLimit` to ~80k + 25k per output element.
contract TenderAgent is ITenderConsumer, Ownable2Step {
    using SafeERC20 for IERC20;

    /// @notice The payment token of every market this agent uses.
    IERC20 public immutable token;

    /// @notice The market `ask` sends intents of each auction type to (zero: none).
    mapping(uint8 auctionType => IMarket) public marketFor;
    /// @notice Markets whose callbacks are accepted (kept after a replacement, for jobs still running).
    mapping(address market => bool) public isMarket;

    mapping(bytes32 jobId => uint256[]) private _results;
    mapping(bytes32 jobId => bool) private _answered;

    event MarketAdded(address indexed market, uint8 indexed auctionType);
    event Funded(address indexed from, uint256 amount);
    event Asked(bytes32 indexed jobId, bytes32 indexed modelId, uint256 maxPrice);
    event ResultReceived(bytes32 indexed jobId, uint256[] output);
    event Swept(address indexed to, uint256 amount);

    error NotMarket(address caller);
    error NotRequester(address requester);
    error NoResult(bytes32 jobId);
    error NoMarket(uint8 auctionType);
    error WrongToken(address market, address token);
    error NoCallbackGas();
    error InsufficientBalance(uint256 balance, uint256 needed);
    error ZeroAmount();
    error ZeroAddress();

    constructor(IMarket market_, address owner_) Ownable(owner_) {
        token = IERC20(market_.token());
        _addMarket(market_);
    }

    /// @notice Also use `market_` (same payment token) for intents of its auction type.
    function addMarket(IMarket market_) external onlyOwner {
        address paid = market_.token();
        if (paid != address(token)) revert WrongToken(address(market_), paid);
        _addMarket(market_);
    }

    /// @notice Pulls `amount` payment tokens from the caller (who approved this contract) as budget.
    function fund(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        emit Funded(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Posts `intent` to the market of its auction type, paying the escrow from this balance.
    /// The requester must be this contract and `callbackGasLimit` non-zero (the result comes back only
    /// through the callback).
    function ask(Intent calldata intent) external onlyOwner returns (bytes32 jobId) {
        if (intent.requester != address(this)) revert NotRequester(intent.requester);
        if (intent.callbackGasLimit == 0) revert NoCallbackGas();
        IMarket market = marketFor[intent.auctionType];
        if (address(market) == address(0)) revert NoMarket(intent.auctionType);
        uint256 escrow = market.escrowFor(intent.maxPrice);
        // refunds stay in the market as this agent's balance there and pay for later intents first
        if (market.owed(address(this)) < escrow) {
            uint256 balance = token.balanceOf(address(this));
            if (balance < escrow) revert InsufficientBalance(balance, escrow);
            token.forceApprove(address(market), escrow);
        }
        jobId = market.post(intent);
        emit Asked(jobId, intent.modelId, intent.maxPrice);
    }

    /// @inheritdoc ITenderConsumer
    function onTenderResult(bytes32 jobId, uint256[] calldata output) external {
        if (!isMarket[msg.sender]) revert NotMarket(msg.sender);
        _results[jobId] = output;
        _answered[jobId] = true;
        emit ResultReceived(jobId, output);
    }

    /// @notice Moves what `market` owes this agent (refunds) into this contract's balance (`market.withdraw`).
    function withdrawFrom(IMarket market) external onlyOwner returns (uint256) {
        if (!isMarket[address(market)]) revert NotMarket(address(market));
        return market.withdraw();
    }

    /// @notice Moves the slash compensation credited to this agent in `market`'s Staking into this
    /// contract's balance (compensation is claimable in Staking, not owed by the market; `Staking.claim`).
    function claimFrom(IMarket market) external onlyOwner returns (uint256) {
        if (!isMarket[address(market)]) revert NotMarket(address(market));
        return IStaking(market.staking()).claim();
    }

    /// @notice Sends tokens (unspent budget, withdrawn refunds and claimed compensation) to `to`.
    function sweep(address to, uint256 amount) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        emit Swept(to, amount);
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

    function _addMarket(IMarket market_) private {
        uint8 auctionType = market_.auctionType();
        marketFor[auctionType] = market_;
        isMarket[address(market_)] = true;
        emit MarketAdded(address(market_), auctionType);
    }
}
