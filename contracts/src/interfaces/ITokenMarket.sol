// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {JobState} from "../MarketStructs.sol";
import {IResultCommitments} from "./IResultCommitments.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/// @notice A provider's firm offer for one token-generation job, signed with EIP-712 by the provider or a
/// solver it authorised in Staking. The job id is the quote's digest, so a quote opens at most one job.
struct TokenQuote {
    // the only account that may open the job (pays the escrow, gets the tokens)
    address requester;
    // the staked provider that generates, is paid, and is slashed
    address provider;
    // a token model registered in this market (`setTokenModel`)
    bytes32 modelId;
    // keccak256 of the request: the prompt's token ids and the sampling rule (what re-executors re-run)
    bytes32 requestHash;
    // the token budget: at most this many tokens; fewer only when the last one is EOS
    uint32 maxTokens;
    // price per 1,000 tokens in payment-token units; the escrow is ceil(pricePer1k * maxTokens / 1000)
    uint96 pricePer1k;
    // promised seconds from open to delivery
    uint32 latency;
    // the quote may be taken strictly before this time
    uint64 expiry;
    // makes two otherwise equal quotes two jobs
    uint256 salt;
}

/// @notice How this market serves a token model of the registry's re-execution tier (`ModelRegistry`, `proofModes`
/// 4: the model id pins the ONNX file; `auditRateBps` is the tier's, repeated here and checked equal).
struct TokenModelConfig {
    // the end-of-sequence id: a sequence shorter than its budget must end with it, and nothing follows it
    uint32 eosId;
    // every delivered id is below it
    uint32 vocabSize;
    // the largest budget a quote may carry (bounds delivery calldata and re-execution cost)
    uint32 maxTokens;
    // share of deliveries audited by re-execution, in basis points of 10^4
    uint16 auditRateBps;
    // stake locked per job = max(escrow * stakeMultiple, 1): audit_rate * (stake + price) > cost saved
    uint16 stakeMultiple;
    // equal verdicts that decide a dispute; the owner keeps 2 * quorum > the number of re-executors
    uint16 quorum;
    // the least stake (in Staking) a re-executor must hold to vote
    uint96 minReexecutorStake;
}

/// @notice What the market stores per token job. Its `state` is the one job lifecycle (`JobState`), of which a token
/// job uses None (never opened), Awarded (opened, waiting for tokens), Delivered (tokens on chain, challengeable),
/// Challenged (audited or challenged: re-executors vote), and the terminal Settled, Slashed and Expired.
struct TokenJob {
    address requester;
    // when the job was opened
    uint40 openedAt;
    // the provider's deadline: openedAt + latency
    uint40 due;
    JobState state;
    // whether the audit draw was made (a job is drawn once)
    bool auditDrawn;
    address provider;
    // the block `deliver` was mined in (the audit draw uses the next block's hash)
    uint40 deliveredBlock;
    // when the tokens were delivered (the challenge window starts here)
    uint40 deliveredAt;
    // tokens delivered on chain
    uint32 delivered;
    address challenger;
    // the end of a dispute's vote window
    uint40 voteDeadline;
    uint16 votesFaithful;
    uint16 votesUnfaithful;
    bytes32 modelId;
    uint32 maxTokens;
    uint96 pricePer1k;
    // stake locked in Staking for the job
    uint96 stakeLocked;
    // ceil(pricePer1k * maxTokens / 1000), held by the market until a terminal state
    uint96 escrow;
    // the challenger's bond (0 for an audit)
    uint96 bond;
    // keccak256 of the delivered ids (uint32 big-endian each)
    bytes32 outputHash;
}

/// @title ITokenMarket
/// @notice Token-generating models priced per 1,000 tokens, delivered optimistically and checked by sampled
/// re-execution: a share of deliveries is audited (drawn from the next block's hash) and any watcher may
/// challenge with a bond; the model's staked re-executors vote and `quorum` equal verdicts decide. The chain
/// itself refuses malformed and truncated sequences. docs/PROTOCOL.md "Token models and re-execution audits".
interface ITokenMarket is IResultCommitments {
    event TokenModelSet(bytes32 indexed modelId, TokenModelConfig config);
    event ReexecutorSet(bytes32 indexed modelId, address indexed account, bool allowed);
    event TokenJobOpened(
        bytes32 indexed jobId,
        address indexed requester,
        address indexed provider,
        bytes32 modelId,
        bytes32 requestHash,
        uint32 maxTokens,
        uint96 pricePer1k,
        uint96 escrow,
        uint96 stakeLocked,
        uint40 due
    );
    /// @notice The sequence went on chain: `tokens` are the ids (uint32 big-endian each).
    event TokenDelivered(
        bytes32 indexed jobId, address indexed provider, uint32 delivered, bytes32 outputHash, bytes tokens
    );
    event TokenAuditDrawn(bytes32 indexed jobId, bool audited);
    event TokenChallenged(
        bytes32 indexed jobId, address indexed challenger, uint96 bond, uint40 voteDeadline
    );
    event ReexecutionVoted(bytes32 indexed jobId, address indexed reexecutor, bool faithful);
    /// @notice Paid for `delivered` tokens: `paid` to the provider, `refund` of the escrow to the requester.
    event TokenJobSettled(
        bytes32 indexed jobId, address indexed provider, uint32 delivered, uint256 paid, uint256 refund
    );
    /// @notice Re-executors found the delivery unfaithful: the lock went to the requester and the challenger.
    event TokenJobSlashed(
        bytes32 indexed jobId, address indexed provider, uint256 toRequester, uint256 toChallenger
    );
    /// @notice Nothing delivered by `due`: the lock went to the requester, the escrow back to it.
    event TokenJobExpired(bytes32 indexed jobId, address indexed provider, uint256 slashed);
    event Withdrawn(address indexed account, uint256 amount);

    error ZeroAddress();
    error UnknownTokenModel(bytes32 modelId);
    /// @notice `setTokenModel` takes only a model registered in the re-execution tier (`proofModes` 4).
    error NotReexecutionModel(bytes32 modelId, uint8 proofModes);
    /// @notice The config's audit share is not the registry's for the model.
    error AuditRateMismatch(uint16 registry, uint16 config);
    error BadTokenModel(uint32 vocabSize, uint32 eosId, uint16 quorum, uint16 auditRateBps);
    error NotRequester(address caller, address requester);
    error TokenQuoteExpired(uint64 expiry, uint256 nowTime);
    error BadBudget(uint32 maxTokens, uint32 modelMax);
    error ZeroPrice();
    error ZeroLatency();
    error InvalidQuoteSigner(address provider, address signer);
    error JobExists(bytes32 jobId);
    error WrongState(bytes32 jobId, JobState state);
    error NotProviderOrSolver(address caller, address provider);
    error PastDue(uint40 due, uint256 nowTime);
    error NotDue(uint40 due, uint256 nowTime);
    /// @notice Delivery calldata must be whole uint32 ids, at least one.
    error BadTokenEncoding(uint256 length);
    error TooManyTokens(uint256 delivered, uint32 maxTokens);
    error TokenOutsideVocab(uint256 index, uint32 id, uint32 vocabSize);
    error TokenAfterEos(uint256 index);
    /// @notice Fewer tokens than the budget without a final EOS.
    error Truncated(uint256 delivered, uint32 maxTokens);
    error AuditTooEarly(uint256 drawableAt, uint256 blockNumber);
    error ChallengeWindowClosed(uint256 closedAt, uint256 nowTime);
    error WindowOpen(uint256 closesAt, uint256 nowTime);
    error NotReexecutor(address caller, bytes32 modelId);
    error ReexecutorStakeTooLow(address caller, uint256 stake, uint256 required);
    error OwnJob(address caller);
    error AlreadyVoted(bytes32 jobId, address reexecutor);
    error VoteClosed(uint40 voteDeadline, uint256 nowTime);
    error NothingToWithdraw(address account);
    error FeeOnTransferToken(uint256 expected, uint256 received);
    /// @notice An escrow or stake that does not fit 96 bits.
    error AmountTooLarge(uint256 amount);

    /// @notice Owner: serves (or updates how it serves) a model registered in the re-execution tier.
    function setTokenModel(bytes32 modelId, TokenModelConfig calldata config) external;
    /// @notice The model registry whose re-execution tier this market serves.
    function registry() external view returns (IModelRegistry);
    /// @notice Owner: adds or removes a re-executor of `modelId`.
    function setReexecutor(bytes32 modelId, address account, bool allowed) external;

    /// @notice The requester opens the job of a signed quote: escrows ceil(pricePer1k * maxTokens / 1000) and
    /// locks max(escrow * stakeMultiple, 1) of the provider's stake. Returns the job id (the quote's digest).
    function open(TokenQuote calldata quote, bytes calldata signature) external returns (bytes32 jobId);
    /// @notice The provider or its solver, by `due`: puts the ids on chain (uint32 big-endian each). Refuses an
    /// empty, oversized, out-of-vocabulary, post-EOS or truncated sequence.
    function deliver(bytes32 jobId, bytes calldata tokens) external;
    /// @notice Anyone, from block deliveredBlock + 2: draws whether the delivery is audited.
    function drawAudit(bytes32 jobId) external returns (bool audited);
    /// @notice Anyone, within the challenge window of a Delivered job: posts the challenge bond; re-executors vote.
    function challenge(bytes32 jobId) external;
    /// @notice A re-executor of the job's model, on a Challenged job within its vote window: its verdict.
    function vote(bytes32 jobId, bool faithful) external;
    /// @notice Anyone: settles a Delivered job past its challenge window (drawing the audit first if nobody did:
    /// an audited job becomes Challenged instead), or a Challenged job past its vote window without a quorum.
    function finalize(bytes32 jobId) external;
    /// @notice Anyone, past `due` with nothing delivered: the whole lock to the requester, the escrow back.
    function expire(bytes32 jobId) external;
    /// @notice Anyone holding the provider's signed result commitment (EIP-712 `ResultCommitment(jobId,
    /// outputHash)`, `outputHash` = keccak256 of the ids as delivered, uint32 big-endian each) to a sequence other
    /// than the one it delivered on chain: before settlement the job is slashed as an unfaithful delivery (lock to
    /// the requester, escrow back, a challenger's bond returned); after it, up to the job's lock is taken from
    /// the provider's free stake for the requester. Once per job. A job with nothing delivered expires slashed.
    function slashCommitment(bytes32 jobId, bytes32 committedHash, bytes calldata signature) external;
    /// @notice Pays out the caller's credit.
    function withdraw() external returns (uint256 amount);

    function hashQuote(TokenQuote calldata quote) external view returns (bytes32);
    function escrowFor(uint96 pricePer1k, uint32 tokens) external pure returns (uint256);
    function job(bytes32 jobId) external view returns (TokenJob memory);
    function tokenModel(bytes32 modelId) external view returns (TokenModelConfig memory);
    function isReexecutor(bytes32 modelId, address account) external view returns (bool);
    function hasVoted(bytes32 jobId, address account) external view returns (bool);
    function owed(address account) external view returns (uint256);
    function challengeWindow() external view returns (uint32);
    function voteWindow() external view returns (uint32);
    function challengeBond() external view returns (uint96);
    function challengerRewardBps() external view returns (uint16);
    function token() external view returns (address);
    function staking() external view returns (address);
}
