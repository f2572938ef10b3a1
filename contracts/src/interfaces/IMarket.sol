// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DisputeTerms, Intent, Job, JobState, MarketParams} from "../MarketStructs.sol";

/// @title IMarketEvents
/// @notice The events and errors of `IMarket`, apart so that the market's extension (which runs the cold
/// steps on the market's storage) emits and reverts with the same ones.
interface IMarketEvents {
    // ------------------------------------------------------------------ events

    /// @notice A job opened. The whole intent is logged so the job can be rebuilt from logs alone; a reverse job's
    /// `AuctionTerms` and `JobTerms` are rebuilt from it (postedAt = auctionEnd - intent.auctionWindow).
    event IntentPosted(
        bytes32 indexed jobId,
        address indexed requester,
        bytes32 indexed modelId,
        Intent intent,
        uint256 escrow,
        uint16 feeBps,
        uint16 stakeMultiple,
        uint40 auctionEnd,
        address submitter
    );
    /// @notice A provider was awarded the job and its stake locked.
    event Awarded(
        bytes32 indexed jobId,
        address indexed provider,
        uint256 price,
        uint32 latency,
        uint256 stakeLocked,
        uint40 providerDeadline
    );
    /// @notice A provider could not lock the stake its bid needed at award time and was passed over
    /// (`available` is what it could lock, unstaking stake included); at `award` it was also penalised
    /// (Staking's `StakePenalized`).
    event AwardSkipped(bytes32 indexed jobId, address indexed provider, uint256 available, uint256 required);
    /// @notice A provider was passed over because `now + latency` would pass the job's deadline: no award
    /// leaves a provider less time than it promised.
    event AwardSkippedLate(bytes32 indexed jobId, address indexed provider, uint32 latency, uint40 deadline);
    /// @notice The output was handed in. `state` is Settled (zk), Delivered or ProofRequired (optimistic);
    /// `disputeEnd` is the end of the challenge window or the proof deadline (0 when settled).
    event Delivered(
        bytes32 indexed jobId,
        address indexed provider,
        uint256[] output,
        bytes32 outputHash,
        JobState state,
        uint40 disputeEnd
    );
    /// @notice An optimistic delivery was picked for audit and must be proven by `proofDeadline`.
    event AuditRequired(bytes32 indexed jobId, address indexed provider, uint40 proofDeadline);
    /// @notice The audit of an optimistic delivery was drawn (once per job).
    event AuditDrawn(bytes32 indexed jobId, bool audited);
    /// @notice The awarded provider declined the job (no slash, no pay); its stake stays locked until
    /// `releaseAt` (`releaseDeclined`).
    event Declined(bytes32 indexed jobId, address indexed provider, uint40 releaseAt);
    /// @notice A declined provider's stake for the job was released.
    event DeclineReleased(bytes32 indexed jobId, address indexed provider);
    /// @notice An optimistic delivery was challenged.
    event Challenged(bytes32 indexed jobId, address indexed challenger, uint256 bond, uint40 proofDeadline);
    /// @notice A challenged or audited delivery was proven; `bondPaid` went to the provider.
    event Proved(bytes32 indexed jobId, address indexed prover, uint256 bondPaid);
    /// @notice The job settled: the provider was credited `price` (see `owed`), `fee` accrued for the
    /// treasury, the requester was credited `refund`. `latency` is deliveredAt - awardedAt.
    event Settled(
        bytes32 indexed jobId,
        address indexed provider,
        uint256 price,
        uint256 fee,
        uint256 refund,
        uint256 latency
    );
    /// @notice The provider missed its deadline; its locked stake `slashed` was credited to the requester as
    /// compensation in Staking (`IStaking.claimable`).
    event Expired(bytes32 indexed jobId, address indexed provider, uint256 slashed);
    /// @notice After an expiry the job was re-awarded to the runner-up.
    event FailedOver(bytes32 indexed jobId, address indexed from, address indexed to, uint256 price);
    /// @notice The escrow was credited back to the requester (see `owed`).
    event Refunded(bytes32 indexed jobId, address indexed requester, uint256 amount);
    /// @notice A challenged or audited provider failed to prove: its locked stake was credited to the
    /// requester and the challenger (`toRequester`, `toChallenger`) in Staking (`IStaking.claimable`), and
    /// the challenger's bond credited back to it here (`owed`).
    event Slashed(
        bytes32 indexed jobId,
        address indexed provider,
        uint256 toRequester,
        uint256 toChallenger,
        uint256 bondReturned
    );
    /// @notice The consumer callback reverted or ran out of gas (the first 128 bytes of its revert data).
    event CallbackFailed(bytes32 indexed jobId, address indexed requester, bytes reason);
    event NoncesInvalidated(address indexed owner, uint256 indexed word, uint256 mask);
    event ParamsUpdated(MarketParams params);
    /// @notice `setParams` scheduled `params`; `applyParams` applies them from `effectiveAt` on.
    event ParamsScheduled(MarketParams params, uint40 effectiveAt);
    event TreasuryUpdated(address treasury);
    /// @notice Protocol fees accrued by settlements were paid out to the treasury.
    event FeesWithdrawn(address indexed treasury, uint256 amount);
    /// @notice `account` was paid everything the market owed it.
    event Withdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    error NotRequester(address caller, address requester);
    error InvalidSignature(address requester, bytes32 jobId);
    error NonceAlreadyUsed(address owner, uint256 nonce);
    error IntentExpired(uint64 expiry, uint256 nowTime);
    error WrongAuctionType(uint8 got, uint8 expected);
    error UnknownModel(bytes32 modelId);
    error UnsupportedProofMode(bytes32 modelId, uint8 proofMode);
    error ZeroMaxPrice();
    error ValueTooLarge(uint256 value, uint256 max);
    error BadStartPrice(uint256 startPrice, uint256 maxPrice);
    error BadWindow(uint32 auctionWindow, uint64 deadline, uint256 nowTime);
    error BadPriceWeight(uint16 priceWeightBps);
    error CallbackGasTooHigh(uint32 callbackGasLimit, uint32 max);
    error FeeOnTransferToken(uint256 expected, uint256 received);
    error InvalidState(bytes32 jobId, JobState state);
    error NotAuthorized(address provider, address caller);
    error AuctionClosed(bytes32 jobId, uint40 auctionEnd);
    error AuctionNotEnded(bytes32 jobId, uint40 auctionEnd);
    error DeadlinePassed(bytes32 jobId, uint40 deadline);
    error ZeroLatency();
    error LatencyTooLong(uint32 latency, uint256 maxLatency);
    error InsufficientStake(address provider, uint256 available, uint256 required);
    error DeliveryTooLate(bytes32 jobId, uint256 providerDeadline, uint256 nowTime);
    error OutputLengthMismatch(uint256 got, uint256 expected);
    error ProofRejected(bytes32 jobId);
    /// @notice A polycommit model's proof commits to another input than the intent's.
    error InputMismatch(bytes32 jobId);
    error ChallengeWindowClosed(bytes32 jobId, uint40 disputeEnd);
    error ChallengeWindowOpen(bytes32 jobId, uint40 disputeEnd);
    error ProofDeadlinePassed(bytes32 jobId, uint40 disputeEnd);
    error NotExpired(bytes32 jobId, uint256 deadline);
    error NotRefundable(bytes32 jobId);
    /// @notice The terms passed do not hash to the ones the reverse job was posted with (`AuctionTerms`).
    error TermsMismatch(bytes32 jobId);
    error InsufficientGasForCallback(uint256 gasLeft, uint256 needed);
    error FeeTooHigh(uint16 feeBps, uint16 max);
    error BadParams();
    error ZeroAddress();
    error NothingOwed(address account);
    /// @notice The staking contract's token is not the payment token.
    error TokenMismatch(address stakingToken, address token);
    error NoPendingParams();
    error ParamsNotReady(uint40 effectiveAt);
    /// @notice The audit draw needs the hash of the block after the delivery: wait until `readyBlock`.
    error AuditNotReady(bytes32 jobId, uint256 readyBlock);
    error AuditAlreadyDrawn(bytes32 jobId);
    error DeclineWindowClosed(bytes32 jobId, uint256 end);
    error NotDeclined(bytes32 jobId, address provider);
}

/// @title IMarket
/// @notice Escrow and job state machine shared by both auction types. A job is one signed or posted
/// intent; its id is the intent's EIP-712 digest. Every job reaches a terminal state through
/// permissionless calls (`award`/`fill`, `deliver`, `finalize`, `prove`, `expire`, `refund`).
/// See docs/PROTOCOL.md for the transitions and who may call what when.
interface IMarket is IMarketEvents {
    // ------------------------------------------------------------------ entry

    /// @notice Opens a job for `intent`; the caller must be its requester. Takes maxPrice + fee from
    /// the requester's balance in the market (`owed`) when that covers it, else from its allowance.
    function post(Intent calldata intent) external returns (bytes32 jobId);

    /// @notice Opens a job for an intent signed by its requester (EOA or ERC-1271); anyone may relay.
    /// Takes maxPrice + fee as `post` does (balance in the market, else allowance).
    function submitSigned(Intent calldata intent, bytes calldata signature) external returns (bytes32 jobId);

    /// @notice Cancels (marks used) the caller's nonces `word << 8 | bit` for every bit set in `mask`.
    function invalidateNonces(uint256 word, uint256 mask) external;

    // ------------------------------------------------------------------ delivery and disputes

    /// @notice The provider (or its solver) hands in the output by its deadline. zk mode, or any mode
    /// with a non-empty proof: the proof is verified and the job settles now. Optimistic mode without a
    /// proof: the output is stored and the challenge window (or an audit's proof window) starts.
    /// A reverse-auction job still open after its window is awarded first.
    function deliver(bytes32 jobId, uint256[] calldata output, bytes calldata proof) external;

    /// @notice Disputes an optimistic delivery during its challenge window, posting the challenge bond.
    function challenge(bytes32 jobId) external;

    /// @notice The provider (or its solver) proves a challenged or audited delivery by the proof
    /// deadline; the job settles and any challenge bond goes to the provider.
    function prove(bytes32 jobId, bytes calldata proof) external;

    /// @notice Settles an unchallenged optimistic delivery once its challenge window has closed. If its
    /// audit was not drawn yet it is drawn first, and if that picks the job it moves to ProofRequired
    /// instead of settling.
    function finalize(bytes32 jobId) external;

    /// @notice Draws the audit of an optimistic delivery (anyone, state Delivered, once, from the second block
    /// after the delivery on): with the model's audit rate the job moves to ProofRequired with the job's proof
    /// window. The seed is blockhash(deliveredBlock + 1); once it is unavailable (256 blocks) the draw audits.
    function drawAudit(bytes32 jobId) external;

    /// @notice The awarded provider (or its solver) refuses the job, e.g. because the input it fetched does not
    /// match `inputCommitment` or is unavailable: within the first quarter of its promised latency after the
    /// award. Nothing is slashed or paid and no reputation counted; its stake stays locked until its provider
    /// deadline. The job fails over to the runner-up (if allowed and it still has its promised time) or the
    /// escrow is refunded.
    function decline(bytes32 jobId) external;

    /// @notice Releases a declined provider's stake for the job once its provider deadline has passed (anyone).
    function releaseDeclined(bytes32 jobId, address provider) external;

    /// @notice Awarded and undelivered after the provider's deadline: the locked stake is credited to
    /// the requester with the escrow, or the job fails over to the runner-up. Challenged or
    /// audited and unproven after the proof deadline: slashed (requester refunded and compensated,
    /// challenger repaid and rewarded).
    function expire(bytes32 jobId) external;

    // ------------------------------------------------------------------ admin

    /// @notice Owner: schedules new parameters for jobs posted from `applyParams` on (PARAMS_DELAY, 2 days).
    /// Live jobs keep the terms they were posted with.
    function setParams(MarketParams calldata params) external;
    /// @notice Applies the scheduled parameters once their delay has passed (anyone).
    function applyParams() external;
    /// @notice The current treasury's setter. Fees accrue here at settlement; it receives them from `withdrawFees`.
    function setTreasury(address treasury) external;
    /// @notice Pays every fee accrued so far to the treasury (anyone may call; the tokens only go there).
    function withdrawFees() external returns (uint256 amount);
    /// @notice Pays the caller everything the market owes it: payments as a provider, refunds and
    /// compensation as a requester, returned bonds as a challenger. Works while paused.
    function withdraw() external returns (uint256 amount);
    function pause() external;
    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice AUCTION_REVERSE or AUCTION_DUTCH.
    function auctionType() external pure returns (uint8);
    function hashIntent(Intent calldata intent) external view returns (bytes32 jobId);
    function DOMAIN_SEPARATOR() external view returns (bytes32);
    function job(bytes32 jobId) external view returns (Job memory);
    /// @notice min(deadline, awardedAt + latency); 0 while not awarded.
    function providerDeadline(bytes32 jobId) external view returns (uint256);
    /// @notice The stored output of an optimistic delivery (empty for zk jobs: see `Delivered`).
    function outputOf(bytes32 jobId) external view returns (uint256[] memory);
    function nonceBitmap(address owner, uint256 word) external view returns (uint256);
    function isNonceUsed(address owner, uint256 nonce) external view returns (bool);
    /// @notice What `post` escrows for `maxPrice` at the current fee.
    function escrowFor(uint256 maxPrice) external view returns (uint256);
    function params() external view returns (MarketParams memory);
    /// @notice The scheduled parameters and when they may be applied (0: none).
    function pendingParams() external view returns (MarketParams memory params, uint40 effectiveAt);
    /// @notice An optimistic job's dispute terms, fixed at posting (zero for zk jobs).
    function disputeTerms(bytes32 jobId) external view returns (DisputeTerms memory);
    function token() external view returns (address);
    function registry() external view returns (address);
    function staking() external view returns (address);
    function treasury() external view returns (address);
    /// @notice What the market owes `account` and `withdraw` would pay it. An intent's escrow or a
    /// challenge bond is taken from this balance when it covers the whole amount, else from the allowance.
    function owed(address account) external view returns (uint256);
    /// @notice Protocol fees accrued by settlements and not yet paid out by `withdrawFees`.
    function feesOwed() external view returns (uint256);
    // solhint-disable-next-line func-name-mixedcase
    function MAX_FEE_BPS() external pure returns (uint16);
}
