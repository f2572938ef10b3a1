// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStaking} from "./interfaces/IStaking.sol";

/// @title Staking
/// @notice Provider stake shared by every Tender market. See `IStaking`.
contract Staking is IStaking, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Longest unbonding delay the owner may set (keeps stake from being trapped).
    uint64 public constant MAX_UNBONDING_DELAY = 30 days;

    /// @dev Everything the hot paths touch in one slot: `availableOf` (bid, fill, award), `lock` and
    /// `unlock` read and write only this slot (plus the job's lock). Amounts fit 96 bits (checked on
    /// stake); the two counters bumped on every award and settlement live here, not in `Stats`.
    struct Account {
        uint96 bonded; // stake not unbonding (locked is part of it); stakeOf = bonded + unbonding
        uint96 locked; // sum of live job locks
        uint32 jobsWon; // Stats.jobsWon
        uint32 deliveredInTime; // Stats.deliveredInTime
    }

    struct Unbonding {
        uint128 amount; // leaving at readyAt
        uint64 readyAt;
    }

    /// @dev One slot. `market` lets the market that made a lock release it without the authorisation
    /// lookup; it is cleared by the lock's first slash, which marks the lock as counted in Stats.slashed
    /// (what is left of a slashed lock is then released by any authorised market, as before).
    struct JobLock {
        address market; // the market that locked it; 0 once slashed
        uint96 amount; // still locked for the job
    }

    IERC20 private immutable _token;
    uint64 private _unbondingDelay;
    mapping(address market => bool) private _markets;
    mapping(address provider => Account) private _accounts;
    mapping(address provider => Unbonding) private _unbonding;
    mapping(address provider => mapping(bytes32 jobId => JobLock)) private _locks;
    mapping(address provider => mapping(address solver => bool)) private _solvers;
    mapping(address provider => Operator) private _operators;
    /// @dev Only `expired` and `slashed` are kept here; jobsWon and deliveredInTime live in `Account`.
    mapping(address provider => Stats) private _stats;

    modifier onlyMarket() {
        if (!_markets[msg.sender]) revert NotMarket(msg.sender);
        _;
    }

    constructor(IERC20 token_, address owner_, uint64 unbondingDelay_) Ownable(owner_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        if (unbondingDelay_ > MAX_UNBONDING_DELAY) {
            revert UnbondingDelayTooLong(unbondingDelay_, MAX_UNBONDING_DELAY);
        }
        _token = token_;
        _unbondingDelay = unbondingDelay_;
        emit UnbondingDelaySet(unbondingDelay_);
    }

    // ------------------------------------------------------------------ providers

    /// @inheritdoc IStaking
    function stake(uint256 amount) external nonReentrant {
        _stake(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function stakeFor(address provider, uint256 amount) external nonReentrant {
        if (provider == address(0)) revert ZeroAddress();
        _stake(provider, amount);
    }

    /// @inheritdoc IStaking
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 available = availableOf(msg.sender);
        if (amount > available) revert InsufficientStake(msg.sender, available, amount);
        Unbonding storage u = _unbonding[msg.sender];
        // amount <= available <= bonded < 2**96 and u.amount + bonded <= total staked < 2**96: no overflow
        _accounts[msg.sender].bonded -= uint96(amount);
        uint128 total = u.amount + uint128(amount);
        uint64 readyAt = uint64(block.timestamp) + _unbondingDelay;
        u.amount = total;
        u.readyAt = readyAt;
        emit UnstakeRequested(msg.sender, amount, total, readyAt);
    }

    /// @inheritdoc IStaking
    function withdraw() external nonReentrant returns (uint256 amount) {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert NothingToWithdraw(msg.sender);
        if (block.timestamp < u.readyAt) revert UnbondingNotReady(u.readyAt, block.timestamp);
        amount = u.amount;
        // the amount left `bonded` when it started unbonding
        delete _unbonding[msg.sender];
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function registerOperator(
        string calldata endpoint,
        bytes2 region,
        bytes32 hardwareClass,
        bytes32[] calldata models
    ) external {
        _operators[msg.sender] = Operator(endpoint, region, hardwareClass, models, true);
        emit OperatorRegistered(msg.sender, endpoint, region, hardwareClass, models);
    }

    /// @inheritdoc IStaking
    function setSolver(address solver, bool allowed) external {
        if (solver == address(0)) revert ZeroAddress();
        _solvers[msg.sender][solver] = allowed;
        emit SolverSet(msg.sender, solver, allowed);
    }

    // ------------------------------------------------------------------ owner

    /// @inheritdoc IStaking
    function setMarket(address market, bool allowed) external onlyOwner {
        if (market == address(0)) revert ZeroAddress();
        _markets[market] = allowed;
        emit MarketSet(market, allowed);
    }

    /// @inheritdoc IStaking
    function setUnbondingDelay(uint64 delay) external onlyOwner {
        if (delay > MAX_UNBONDING_DELAY) revert UnbondingDelayTooLong(delay, MAX_UNBONDING_DELAY);
        _unbondingDelay = delay;
        emit UnbondingDelaySet(delay);
    }

    // ------------------------------------------------------------------ markets

    /// @inheritdoc IStaking
    function lock(address provider, bytes32 jobId, uint256 amount) external onlyMarket {
        if (amount == 0) revert ZeroAmount();
        JobLock storage l = _locks[provider][jobId];
        if (l.amount != 0) revert AlreadyLocked(provider, jobId);
        Account storage a = _accounts[provider];
        uint256 available = uint256(a.bonded) - a.locked;
        if (amount > available) revert InsufficientStake(provider, available, amount);
        // amount <= available < 2**96 and locked + available = bonded < 2**96
        a.locked += uint96(amount);
        (l.market, l.amount) = (msg.sender, uint96(amount));
        unchecked {
            // a uint32 counter bumped once per award (more than 4e9 awards per provider is not reachable)
            ++a.jobsWon;
        }
        emit StakeLocked(provider, jobId, msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function unlock(address provider, bytes32 jobId) external returns (uint256 released) {
        JobLock storage l = _locks[provider][jobId];
        // the market that made the lock needs no lookup; a market the owner has removed since can still
        // release (never slash) the stake it locked, so that its jobs settle
        if (l.market != msg.sender && !_markets[msg.sender]) revert NotMarket(msg.sender);
        released = l.amount;
        if (released == 0) revert NotLocked(provider, jobId);
        // clearing the lock slot earns the storage refund
        (l.market, l.amount) = (address(0), 0);
        Account storage a = _accounts[provider];
        unchecked {
            // the job's lock is part of the provider's total lock (released <= a.locked); a uint32 counter
            // bumped once per settlement (at most once per award)
            a.locked -= uint96(released);
            ++a.deliveredInTime;
        }
        emit StakeUnlocked(provider, jobId, released);
    }

    /// @inheritdoc IStaking
    function slash(address provider, bytes32 jobId, uint256 amount, address recipient)
        external
        onlyMarket
        nonReentrant
    {
        if (recipient == address(0)) revert ZeroAddress();
        JobLock storage l = _locks[provider][jobId];
        uint256 locked = l.amount;
        if (locked == 0) revert NotLocked(provider, jobId);
        if (amount > locked) revert SlashExceedsLock(amount, locked);
        // amount <= locked <= account.locked <= account.bonded (all < 2**96)
        l.amount = uint96(locked - amount);
        Account storage a = _accounts[provider];
        a.bonded -= uint96(amount);
        a.locked -= uint96(amount);
        if (l.market != address(0)) {
            // the first slash of this lock
            l.market = address(0);
            unchecked {
                // a uint64 counter bumped at most once per job cannot overflow
                ++_stats[provider].slashed;
            }
        }
        emit StakeSlashed(provider, jobId, recipient, amount);
        if (amount != 0) _token.safeTransfer(recipient, amount);
    }

    /// @inheritdoc IStaking
    function recordExpiry(address provider, bytes32 jobId) external onlyMarket {
        unchecked {
            // a uint64 counter bumped once per expiry cannot overflow
            ++_stats[provider].expired;
        }
        emit ExpiryRecorded(provider, jobId);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IStaking
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IStaking
    function unbondingDelay() external view returns (uint64) {
        return _unbondingDelay;
    }

    /// @inheritdoc IStaking
    function isMarket(address market) external view returns (bool) {
        return _markets[market];
    }

    /// @inheritdoc IStaking
    function isAuthorized(address provider, address caller) external view returns (bool) {
        return provider == caller || _solvers[provider][caller];
    }

    /// @inheritdoc IStaking
    function stakeOf(address provider) external view returns (uint256) {
        return uint256(_accounts[provider].bonded) + _unbonding[provider].amount;
    }

    /// @inheritdoc IStaking
    function lockedOf(address provider) external view returns (uint256) {
        return _accounts[provider].locked;
    }

    /// @inheritdoc IStaking
    function unbondingOf(address provider) external view returns (uint256 amount, uint64 readyAt) {
        Unbonding memory u = _unbonding[provider];
        return (u.amount, u.readyAt);
    }

    /// @inheritdoc IStaking
    function availableOf(address provider) public view returns (uint256) {
        Account storage a = _accounts[provider];
        unchecked {
            // bonded >= locked is kept by requestUnstake (only available stake unbonds), lock (only
            // available stake locks) and slash (removes equal amounts from bonded and locked)
            return uint256(a.bonded) - a.locked;
        }
    }

    /// @inheritdoc IStaking
    function lockedFor(address provider, bytes32 jobId) external view returns (uint256) {
        return _locks[provider][jobId].amount;
    }

    /// @inheritdoc IStaking
    function operator(address provider) external view returns (Operator memory) {
        return _operators[provider];
    }

    /// @inheritdoc IStaking
    function stats(address provider) external view returns (Stats memory s) {
        s = _stats[provider];
        Account storage a = _accounts[provider];
        (s.jobsWon, s.deliveredInTime) = (a.jobsWon, a.deliveredInTime);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Pulls `amount` from the caller and credits `provider`; refuses fee-on-transfer tokens.
    function _stake(address provider, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransferToken(amount, received);
        Account storage a = _accounts[provider];
        // everything staked (unbonding included) fits 96 bits, so every amount derived from it does
        uint256 total = uint256(a.bonded) + _unbonding[provider].amount + amount;
        if (total > type(uint96).max) revert AmountTooLarge(total);
        a.bonded += uint96(amount);
        emit Staked(provider, msg.sender, amount);
    }
}
