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

    /// @notice Longest unstaking delay the owner may set (keeps stake from being trapped).
    uint64 public constant MAX_UNSTAKING_DELAY = 30 days;
    /// @notice How long a market added after the first stake waits before it may lock or slash: longer than
    /// any unstaking delay, so every provider can leave before a market it did not stake under touches it.
    uint64 public constant MARKET_DELAY = MAX_UNSTAKING_DELAY + 1 days;

    /// @dev Everything the hot paths touch in one slot: `availableOf` (bid, fill, award), `lock` and
    /// `unlock` read and write only this slot (plus the job's lock). Amounts fit 96 bits (checked on
    /// stake); the two counters bumped on every award and settlement live here, not in `Stats`.
    struct Account {
        uint96 active; // stake not unstaking (locked is part of it); stakeOf = active + unstaking
        uint96 locked; // sum of live job locks
        uint32 jobsWon; // Stats.jobsWon
        uint32 deliveredInTime; // Stats.deliveredInTime
    }

    struct Unstaking {
        uint128 amount; // leaving at readyAt
        uint64 readyAt;
    }

    /// @dev One slot. `market` lets the market that made a lock release, slash and record it without the
    /// authorisation lookup, even after the owner removed that market: a lock can always be finished.
    struct JobLock {
        address market; // the market that locked it
        uint96 amount; // still locked for the job
    }

    IERC20 private immutable _token;
    /// @dev A job counts for reputation (jobsWon, deliveredInTime) only if its protocol fee reaches this.
    uint256 private immutable _minCountedFee;
    uint64 private _unstakingDelay;
    /// @dev Set by the first stake: from then on a new market waits MARKET_DELAY (shares the delay's slot).
    bool private _staked;
    /// @dev When each market may start locking and slashing (0: not a market).
    mapping(address market => uint64 activeAt) private _markets;
    /// @dev Slashed and penalised stake owed to requesters and challengers, paid out by `claim`.
    mapping(address account => uint256 amount) private _claimable;
    mapping(address provider => Account) private _accounts;
    mapping(address provider => Unstaking) private _unstaking;
    mapping(address provider => mapping(bytes32 jobId => JobLock)) private _locks;
    mapping(address provider => mapping(address solver => bool)) private _solvers;
    mapping(address provider => Operator) private _operators;
    /// @dev Only `expired` and `slashed` are kept here; jobsWon and deliveredInTime live in `Account`.
    mapping(address provider => Stats) private _stats;
    /// @dev Every market the owner ever added: it may release the bid reservations it made after removal.
    mapping(address market => bool) private _everMarket;
    /// @dev Markets removed after they became active: they may still release and forfeit the holds they took
    /// (a market removed before it ran never held anything, so it gets no such power).
    mapping(address market => bool) private _retired;

    modifier onlyMarket() {
        if (!_isMarket(msg.sender)) revert NotMarket(msg.sender);
        _;
    }

    constructor(IERC20 token_, address owner_, uint64 unstakingDelay_, uint256 minCountedFee_)
        Ownable(owner_)
    {
        if (address(token_) == address(0)) revert ZeroAddress();
        if (unstakingDelay_ > MAX_UNSTAKING_DELAY) {
            revert UnstakingDelayTooLong(unstakingDelay_, MAX_UNSTAKING_DELAY);
        }
        _token = token_;
        _minCountedFee = minCountedFee_;
        _unstakingDelay = unstakingDelay_;
        emit UnstakingDelaySet(unstakingDelay_);
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
    function unstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 available = availableOf(msg.sender);
        if (amount > available) revert InsufficientStake(msg.sender, available, amount);
        Unstaking storage u = _unstaking[msg.sender];
        // amount <= available <= active < 2**96 and u.amount + active <= total staked < 2**96: no overflow
        _accounts[msg.sender].active -= uint96(amount);
        uint128 total = u.amount + uint128(amount);
        uint64 readyAt = uint64(block.timestamp) + _unstakingDelay;
        u.amount = total;
        u.readyAt = readyAt;
        emit Unstaked(msg.sender, amount, total, readyAt);
    }

    /// @inheritdoc IStaking
    function redeem() external nonReentrant returns (uint256 amount) {
        Unstaking memory u = _unstaking[msg.sender];
        if (u.amount == 0) revert NothingToRedeem(msg.sender);
        if (block.timestamp < u.readyAt) revert UnstakingNotReady(u.readyAt, block.timestamp);
        amount = u.amount;
        // the amount left `active` when it started unstaking
        delete _unstaking[msg.sender];
        emit Redeemed(msg.sender, amount);
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
        if (allowed && _staked) {
            // nobody staked under this market: it waits until everyone could have left
            uint64 activeAt = uint64(block.timestamp) + MARKET_DELAY;
            _markets[market] = activeAt;
            _everMarket[market] = true;
            emit MarketScheduled(market, activeAt);
        } else {
            // before the first stake a market starts at once; a removal always does (the market can
            // still finish the locks it made)
            if (!allowed && _isMarket(market)) _retired[market] = true;
            _markets[market] = allowed ? uint64(block.timestamp) : 0;
            if (allowed) _everMarket[market] = true;
            emit MarketSet(market, allowed);
        }
    }

    /// @inheritdoc IStaking
    function setUnstakingDelay(uint64 delay) external onlyOwner {
        if (delay > MAX_UNSTAKING_DELAY) revert UnstakingDelayTooLong(delay, MAX_UNSTAKING_DELAY);
        _unstakingDelay = delay;
        emit UnstakingDelaySet(delay);
    }

    // ------------------------------------------------------------------ markets

    /// @inheritdoc IStaking
    function lock(address provider, bytes32 jobId, uint256 amount, uint256 fee) external onlyMarket {
        if (amount == 0) revert ZeroAmount();
        JobLock storage l = _locks[provider][jobId];
        if (l.amount != 0) revert AlreadyLocked(provider, jobId);
        Account storage a = _accounts[provider];
        uint256 available = uint256(a.active) - a.locked;
        if (amount > available) {
            // a bid is a promise: stake that started unstaking after it is taken back for the award
            Unstaking storage u = _unstaking[provider];
            uint256 shortfall = amount - available;
            if (shortfall > u.amount) revert InsufficientStake(provider, available + u.amount, amount);
            // shortfall <= u.amount and active + u.amount < 2**96 (checked on stake)
            u.amount -= uint128(shortfall);
            a.active += uint96(shortfall);
            emit UnstakingReclaimed(provider, shortfall);
        }
        // amount <= available < 2**96 and locked + available = active < 2**96
        a.locked += uint96(amount);
        (l.market, l.amount) = (msg.sender, uint96(amount));
        if (fee >= _minCountedFee) {
            unchecked {
                // a uint32 counter bumped once per award (more than 4e9 awards per provider is not reachable)
                ++a.jobsWon;
            }
        }
        emit StakeLocked(provider, jobId, msg.sender, amount);
    }

    /// @inheritdoc IStaking
    function placeHold(address provider, uint256 amount, uint256 fee) external onlyMarket {
        if (amount == 0) revert ZeroAmount();
        // the account read and written whole (one slot), as `lock` takes it: available stake first, then the
        // shortfall from unstaking (a quote is a promise: stake that started unstaking is taken back)
        Account memory a = _accounts[provider];
        uint256 available = uint256(a.active) - a.locked;
        if (amount > available) {
            Unstaking storage u = _unstaking[provider];
            uint256 shortfall = amount - available;
            if (shortfall > u.amount) revert InsufficientStake(provider, available + u.amount, amount);
            // shortfall <= u.amount and active + u.amount < 2**96 (checked on stake)
            u.amount -= uint128(shortfall);
            a.active += uint96(shortfall);
            emit UnstakingReclaimed(provider, shortfall);
        }
        unchecked {
            // amount <= available (after the shortfall) and locked + available = active < 2**96
            a.locked += uint96(amount);
            // a uint32 counter bumped once per award (more than 4e9 awards per provider is not reachable)
            if (fee >= _minCountedFee) ++a.jobsWon;
        }
        _accounts[provider] = a;
    }

    /// @inheritdoc IStaking
    function freeHold(address provider, uint256 amount, uint256 fee) external {
        _requireHolder();
        Account memory a = _accounts[provider];
        if (amount > a.locked) revert HoldExceedsLock(amount, a.locked);
        unchecked {
            // amount <= locked < 2**96
            a.locked -= uint96(amount);
            // a uint32 counter bumped once per settlement (at most once per award)
            if (fee >= _minCountedFee) ++a.deliveredInTime;
        }
        _accounts[provider] = a;
    }

    /// @inheritdoc IStaking
    function forfeitHold(address provider, bytes32 jobId, uint256 amount, address recipient) external {
        _requireHolder();
        if (recipient == address(0)) revert ZeroAddress();
        Account memory a = _accounts[provider];
        if (amount > a.locked) revert HoldExceedsLock(amount, a.locked);
        Stats storage st = _stats[provider];
        unchecked {
            // amount <= locked <= active < 2**96
            a.locked -= uint96(amount);
            a.active -= uint96(amount);
            // uint64 counters bumped at most once per job
            ++st.expired;
            ++st.slashed;
        }
        _accounts[provider] = a;
        _claimable[recipient] += amount;
        emit ExpiryRecorded(provider, jobId);
        emit StakeSlashed(provider, jobId, recipient, amount);
    }

    /// @inheritdoc IStaking
    function reserve(address provider, address released, uint256 amount) external onlyMarket {
        // no event: the market's bid event logs the reservation and the release (as holds are logged)
        Account storage a = _accounts[provider];
        (uint96 active, uint96 locked) = (a.active, a.locked);
        unchecked {
            // active >= locked (see `availableOf`)
            uint256 available = uint256(active) - locked;
            if (amount > available) revert InsufficientStake(provider, available, amount);
            // amount <= available: locked + amount <= active < 2**96
            a.locked = locked + uint96(amount);
        }
        // the market releases only what it reserved for `released` (its bid left the book): checked
        if (released != address(0)) _accounts[released].locked -= uint96(amount);
    }

    /// @inheritdoc IStaking
    function release(address provider, uint256 amount) external {
        if (!_everMarket[msg.sender]) revert NotMarket(msg.sender);
        // a market releases only what it reserved (checked); no event: the market's award or refund logs it
        _accounts[provider].locked -= uint96(amount);
    }

    /// @inheritdoc IStaking
    function unlock(address provider, bytes32 jobId, uint256 fee) external returns (uint256 released) {
        JobLock storage l = _locks[provider][jobId];
        _requireLockMarket(l);
        released = l.amount;
        if (released == 0) revert NotLocked(provider, jobId);
        // clearing the lock slot earns the storage refund
        (l.market, l.amount) = (address(0), 0);
        Account storage a = _accounts[provider];
        unchecked {
            // the job's lock is part of the provider's total lock (released <= a.locked)
            a.locked -= uint96(released);
        }
        if (fee >= _minCountedFee) {
            unchecked {
                // a uint32 counter bumped once per settlement (at most once per award)
                ++a.deliveredInTime;
            }
        }
        emit StakeUnlocked(provider, jobId, released);
    }

    /// @inheritdoc IStaking
    function slash(address provider, bytes32 jobId, uint256 amount, address recipient) external {
        if (recipient == address(0)) revert ZeroAddress();
        JobLock storage l = _locks[provider][jobId];
        _requireLockMarket(l);
        uint256 locked = l.amount;
        if (locked == 0) revert NotLocked(provider, jobId);
        if (amount > locked) revert SlashExceedsLock(amount, locked);
        // amount <= locked <= account.locked <= account.active (all < 2**96)
        uint256 left = locked - amount;
        Account storage a = _accounts[provider];
        a.active -= uint96(amount);
        a.locked -= uint96(amount);
        if (left == 0) {
            // the lock is spent: counted once per job
            (l.market, l.amount) = (address(0), 0);
            unchecked {
                // a uint64 counter bumped at most once per job cannot overflow
                ++_stats[provider].slashed;
            }
        } else {
            l.amount = uint96(left);
        }
        // credited, never transferred: a token that blocks this contract or the recipient cannot block it
        _claimable[recipient] += amount;
        emit StakeSlashed(provider, jobId, recipient, amount);
    }

    /// @inheritdoc IStaking
    function penalize(address provider, bytes32 jobId, uint256 amount, address recipient)
        external
        onlyMarket
        returns (uint256 taken)
    {
        if (recipient == address(0)) revert ZeroAddress();
        Account storage a = _accounts[provider];
        Unstaking storage u = _unstaking[provider];
        uint256 available = uint256(a.active) - a.locked;
        uint256 fromActive = amount < available ? amount : available;
        uint256 rest = amount - fromActive;
        uint256 fromUnstaking = rest < u.amount ? rest : u.amount;
        // fromActive <= available <= active, fromUnstaking <= u.amount: no underflow; all < 2**96
        a.active -= uint96(fromActive);
        u.amount -= uint128(fromUnstaking);
        taken = fromActive + fromUnstaking;
        _claimable[recipient] += taken;
        emit StakePenalized(provider, jobId, recipient, taken);
    }

    /// @inheritdoc IStaking
    function recordExpiry(address provider, bytes32 jobId) external {
        _requireLockMarket(_locks[provider][jobId]);
        unchecked {
            // a uint64 counter bumped once per expiry cannot overflow
            ++_stats[provider].expired;
        }
        emit ExpiryRecorded(provider, jobId);
    }

    /// @inheritdoc IStaking
    function claim() external nonReentrant returns (uint256 amount) {
        amount = _claimable[msg.sender];
        if (amount == 0) revert NothingToClaim(msg.sender);
        _claimable[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IStaking
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IStaking
    function unstakingDelay() external view returns (uint64) {
        return _unstakingDelay;
    }

    /// @inheritdoc IStaking
    function isMarket(address market) external view returns (bool) {
        return _isMarket(market);
    }

    /// @inheritdoc IStaking
    function marketActiveAt(address market) external view returns (uint64) {
        return _markets[market];
    }

    /// @inheritdoc IStaking
    function minCountedFee() external view returns (uint256) {
        return _minCountedFee;
    }

    /// @inheritdoc IStaking
    function claimable(address account) external view returns (uint256) {
        return _claimable[account];
    }

    /// @inheritdoc IStaking
    function lockableOf(address provider) external view returns (uint256) {
        return availableOf(provider) + _unstaking[provider].amount;
    }

    /// @inheritdoc IStaking
    function isAuthorized(address provider, address caller) external view returns (bool) {
        return provider == caller || _solvers[provider][caller];
    }

    /// @inheritdoc IStaking
    function stakeOf(address provider) external view returns (uint256) {
        return uint256(_accounts[provider].active) + _unstaking[provider].amount;
    }

    /// @inheritdoc IStaking
    function lockedOf(address provider) external view returns (uint256) {
        return _accounts[provider].locked;
    }

    /// @inheritdoc IStaking
    function unstakingOf(address provider) external view returns (uint256 amount, uint64 readyAt) {
        Unstaking memory u = _unstaking[provider];
        return (u.amount, u.readyAt);
    }

    /// @inheritdoc IStaking
    function availableOf(address provider) public view returns (uint256) {
        Account storage a = _accounts[provider];
        unchecked {
            // active >= locked is kept by unstake (only available stake unstakes), lock (only
            // available stake locks) and slash (removes equal amounts from active and locked)
            return uint256(a.active) - a.locked;
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

    function _isMarket(address market) private view returns (bool) {
        uint64 activeAt = _markets[market];
        return activeAt != 0 && activeAt <= block.timestamp;
    }

    /// @dev An active market, or one removed after it ran (it finishes the holds it took).
    function _requireHolder() private view {
        if (!_isMarket(msg.sender) && !_retired[msg.sender]) revert NotMarket(msg.sender);
    }

    /// @dev The market that made the lock (even if removed since), or any active market.
    function _requireLockMarket(JobLock storage l) private view {
        if (l.market != msg.sender && !_isMarket(msg.sender)) revert NotMarket(msg.sender);
    }

    /// @dev Pulls `amount` from the caller and credits `provider`; refuses fee-on-transfer tokens.
    function _stake(address provider, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransferToken(amount, received);
        Account storage a = _accounts[provider];
        // everything staked (unstaking included) fits 96 bits, so every amount derived from it does
        uint256 total = uint256(a.active) + _unstaking[provider].amount + amount;
        if (total > type(uint96).max) revert AmountTooLarge(total);
        a.active += uint96(amount);
        if (!_staked) _staked = true;
        emit Staked(provider, msg.sender, amount);
    }
}
