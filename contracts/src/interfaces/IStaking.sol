// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IStaking
/// @notice Provider stake shared by all markets. Providers stake, unstake and, after a delay, redeem; they register an
/// operator record and authorise solvers; markets (owner-authorised) lock stake per job, unlock it on
/// settlement and slash it on failure, never beyond what was locked for that job. Slashed stake is credited
/// to its recipients here (`claimable`) and paid out by their `claim`: no slash moves tokens.
/// Invariant: for every provider, stakeOf >= lockedOf + unstakingOf.
interface IStaking {
    /// @notice What a provider tells solvers about itself. Self-declared, not enforced.
    struct Operator {
        string endpoint; // the provider's HTTP quote/job API
        bytes2 region; // where it runs (matches Intent.region hints)
        bytes32 hardwareClass; // e.g. keccak256("nvidia-h100")
        bytes32[] models; // model ids it serves
        bool registered;
    }

    /// @notice Counters solvers route by. Bumped by markets.
    struct Stats {
        uint64 jobsWon; // stake locked for an award whose fee reached minCountedFee
        uint64 deliveredInTime; // settled in time, fee at least minCountedFee
        uint64 expired; // missed a delivery deadline
        uint64 slashed; // jobs whose stake was slashed (expiry or failed proof)
    }

    event Staked(address indexed provider, address indexed payer, uint256 amount);
    event Unstaked(address indexed provider, uint256 amount, uint256 totalUnstaking, uint64 readyAt);
    event Redeemed(address indexed provider, uint256 amount);
    event OperatorRegistered(
        address indexed provider, string endpoint, bytes2 region, bytes32 hardwareClass, bytes32[] models
    );
    event SolverSet(address indexed provider, address indexed solver, bool allowed);
    /// @notice `market` was added (effective now) or removed.
    event MarketSet(address indexed market, bool allowed);
    /// @notice `market` was added after the first stake: it may lock and slash from `activeAt` on.
    event MarketScheduled(address indexed market, uint64 activeAt);
    /// @notice An award took `amount` of the provider's unstaking stake back to lock it.
    event UnstakingReclaimed(address indexed provider, uint256 amount);
    /// @notice A provider that could not lock the stake its bid showed lost `amount` of its free stake to
    /// `recipient` (credited, see `claimable`).
    event StakePenalized(
        address indexed provider, bytes32 indexed jobId, address indexed recipient, uint256 amount
    );
    /// @notice `account` was paid everything credited to it by slashes and penalties.
    event Claimed(address indexed account, uint256 amount);
    event UnstakingDelaySet(uint64 delay);
    event StakeLocked(
        address indexed provider, bytes32 indexed jobId, address indexed market, uint256 amount
    );
    event StakeUnlocked(address indexed provider, bytes32 indexed jobId, uint256 amount);
    event StakeSlashed(
        address indexed provider, bytes32 indexed jobId, address indexed recipient, uint256 amount
    );
    event ExpiryRecorded(address indexed provider, bytes32 indexed jobId);

    error ZeroAmount();
    error ZeroAddress();
    error FeeOnTransferToken(uint256 expected, uint256 received);
    error InsufficientStake(address provider, uint256 available, uint256 required);
    error NothingToRedeem(address provider);
    error UnstakingNotReady(uint64 readyAt, uint256 nowTime);
    error NotMarket(address caller);
    error AlreadyLocked(address provider, bytes32 jobId);
    error NotLocked(address provider, bytes32 jobId);
    error SlashExceedsLock(uint256 amount, uint256 locked);
    error HoldExceedsLock(uint256 amount, uint256 locked);
    error AmountTooLarge(uint256 amount);
    error UnstakingDelayTooLong(uint64 delay, uint64 max);
    error NothingToClaim(address account);

    /// @notice Stakes `amount` for the caller.
    function stake(uint256 amount) external;
    /// @notice Stakes `amount` (paid by the caller) for `provider`.
    function stakeFor(address provider, uint256 amount) external;
    /// @notice Starts unstaking `amount` of the caller's available stake; resets the unstaking clock
    /// of everything already unstaking to now + unstakingDelay.
    function unstake(uint256 amount) external;
    /// @notice Pays the caller everything it unstaked once the delay has passed.
    function redeem() external returns (uint256 amount);
    /// @notice Publishes (or replaces) the caller's operator record.
    function registerOperator(
        string calldata endpoint,
        bytes2 region,
        bytes32 hardwareClass,
        bytes32[] calldata models
    ) external;
    /// @notice Lets `solver` bid, fill, deliver and prove on the caller's behalf (or revokes it).
    function setSolver(address solver, bool allowed) external;
    /// @notice Owner: authorises a market to lock, unlock and slash (or removes it at once). Before anything
    /// was ever staked a new market is active at once (deployment wires markets in one go); afterwards it
    /// is active MARKET_DELAY after this call, so every provider can unstake before it can touch its stake.
    /// A removed market can still unlock, slash and record expiry for the locks it made, and (if it was ever
    /// active) release and forfeit holds.
    function setMarket(address market, bool allowed) external;
    /// @notice Owner: sets the unstaking delay (applies to later requests).
    function setUnstakingDelay(uint64 delay) external;

    /// @notice Market: locks `amount` of `provider`'s stake for `jobId`: its available stake, and the
    /// shortfall from its unstaking stake (a bid cannot be walked away from by unstaking). Bumps jobsWon
    /// when `fee` (the job's protocol fee) reaches `minCountedFee`.
    function lock(address provider, bytes32 jobId, uint256 amount, uint256 fee) external;
    /// @notice Market: reserves `amount` of `provider`'s available stake for a standing bid (it joins
    /// `lockedOf`, so no unstake, lock or other reservation can take it; reverts `InsufficientStake`), and
    /// releases `amount` reserved for `released` (address 0: none). A bid's reservation is thus guaranteed
    /// at its award. Emits nothing (as `placeHold`): the market's `BidPlaced` logs both.
    function reserve(address provider, address released, uint256 amount) external;
    /// @notice Market: releases `amount` of `provider`'s bid reservation. Callable by any market the owner
    /// ever added (a removed market can still finish its jobs). Emits nothing: the market's award or refund
    /// logs it.
    function release(address provider, uint256 amount) external;
    /// @notice Market: releases what is still locked for `jobId`; bumps deliveredInTime when `fee` reaches
    /// `minCountedFee` (a declined job passes 0). Callable by any authorised market, and by the market that
    /// made the lock even after the owner removed it.
    function unlock(address provider, bytes32 jobId, uint256 fee) external returns (uint256 released);
    /// @notice Market: credits `amount` of the stake locked for `jobId` to `recipient` (see `claimable`);
    /// reverts `SlashExceedsLock` if more than is locked. Bumps `slashed` when the lock is used up. Callable
    /// by the market that made the lock even after the owner removed it.
    function slash(address provider, bytes32 jobId, uint256 amount, address recipient) external;
    /// @notice Market: takes up to `amount` of `provider`'s free stake (available, then unstaking; never
    /// locked stake) and credits it to `recipient`. Returns what it took.
    function penalize(address provider, bytes32 jobId, uint256 amount, address recipient)
        external
        returns (uint256 taken);
    /// @notice Market: bumps `expired` for a missed delivery deadline (before the lock is slashed).
    function recordExpiry(address provider, bytes32 jobId) external;
    /// @notice Market: holds `amount` of `provider`'s stake for a job whose amount the market keeps itself (the
    /// quote market: in the job's hashed terms). Like `lock` (available stake, then the shortfall from unstaking
    /// stake; jobsWon when `fee` reaches `minCountedFee`), but the amount only joins `lockedOf`: no per-job slot
    /// (`lockedFor` stays 0), no event (the market's `QuoteAwarded` logs it). Active markets only.
    function placeHold(address provider, uint256 amount, uint256 fee) external;
    /// @notice Market: releases `amount` held by `placeHold` (the job's own amount: the market answers for it);
    /// bumps deliveredInTime when `fee` reaches `minCountedFee`. Reverts `HoldExceedsLock` above `lockedOf`.
    /// No event (the market's `Settled` logs it). Active markets, and markets removed after they ran (they
    /// finish the jobs they hold stake for).
    function freeHold(address provider, uint256 amount, uint256 fee) external;
    /// @notice Market: a held job missed its deadline: records the expiry and slashes its whole hold `amount`
    /// to `recipient` (see `claimable`); emits `ExpiryRecorded` and `StakeSlashed`. Callable as `freeHold`.
    function forfeitHold(address provider, bytes32 jobId, uint256 amount, address recipient) external;
    /// @notice Pays the caller everything slashes and penalties credited to it.
    function claim() external returns (uint256 amount);

    function token() external view returns (address);
    function unstakingDelay() external view returns (uint64);
    /// @notice Whether `market` may lock and slash now.
    function isMarket(address market) external view returns (bool);
    /// @notice When `market` became or becomes active (0: not a market).
    function marketActiveAt(address market) external view returns (uint64);
    function minCountedFee() external view returns (uint256);
    /// @notice Slashed and penalised stake credited to `account`, paid by `claim`.
    function claimable(address account) external view returns (uint256);
    /// @notice availableOf + unstaking: what an award can lock.
    function lockableOf(address provider) external view returns (uint256);
    function isAuthorized(address provider, address caller) external view returns (bool);
    function stakeOf(address provider) external view returns (uint256);
    function lockedOf(address provider) external view returns (uint256);
    function unstakingOf(address provider) external view returns (uint256 amount, uint64 readyAt);
    /// @notice stake - locked - unstaking: what a new job can lock.
    function availableOf(address provider) external view returns (uint256);
    function lockedFor(address provider, bytes32 jobId) external view returns (uint256);
    function operator(address provider) external view returns (Operator memory);
    function stats(address provider) external view returns (Stats memory);
}
