// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Intent, JobState, MarketParams} from "../MarketStructs.sol";
import {IResultCommitments} from "./IResultCommitments.sol";

/// @notice A provider's firm offer for one job, signed with EIP-712 by the provider or a solver it
/// authorised in Staking. The job id is the intent's EIP-712 digest on the market that takes the quote,
/// so a quote is bound to one intent, one market and one chain.
struct Quote {
    // the job (= the intent's digest on this market)
    bytes32 jobId;
    // the staked provider that does the work, is paid, and is slashed
    address provider;
    // the price asked, in payment-token units, 0 < price <= intent.maxPrice
    uint256 price;
    // promised seconds from award to delivery
    uint32 latency;
    // the quote may be taken strictly before this time
    uint64 expiry;
}

/// @dev Why `deliverBatch` skipped a job (`BatchJobSkipped.reason`); the job stays as it was.
/// Not Awarded: settled (also earlier in the same batch), expired, slashed or never opened.
uint8 constant SKIP_NOT_AWARDED = 1;
/// @dev The terms passed do not hash to the job's word.
uint8 constant SKIP_TERMS_MISMATCH = 2;
/// @dev The job is for another model than the batch's.
uint8 constant SKIP_OTHER_MODEL = 3;
/// @dev The caller is not the job's provider nor a solver it authorised.
uint8 constant SKIP_NOT_AUTHORIZED = 4;
/// @dev Past the job's `due`.
uint8 constant SKIP_LATE = 5;
/// @dev Polycommit: the proof's point for the slot does not hash to the job's input commitment.
uint8 constant SKIP_INPUT_MISMATCH = 6;

/// @dev Why `openAwardedBatch` skipped an entry (`BatchAwardSkipped.reason`); nothing of the entry was recorded,
/// held or charged. The intent or the quote expired, or the deadline no longer leaves the quote's latency.
uint8 constant AWARD_SKIP_LATE = 1;
/// @dev The requester's acceptance or the quote's signature does not check (now: a solver deauthorised, an
/// ERC-1271 wallet that no longer agrees).
uint8 constant AWARD_SKIP_SIGNATURE = 2;
/// @dev The intent's nonce is used or cancelled (also by an earlier entry of the same batch: a duplicate).
uint8 constant AWARD_SKIP_NONCE = 3;
/// @dev The provider cannot hold the entry's stake beside what its earlier entries in the batch hold.
uint8 constant AWARD_SKIP_STAKE = 4;
/// @dev The requester cannot pay the entry's escrow beside its earlier entries in the batch (its credit in the
/// market, else its allowance and balance, cover less than the total).
uint8 constant AWARD_SKIP_ESCROW = 5;

/// @notice What later steps of a quoted job need. The market stores only a hash of it (with the state in
/// the same slot); `deliver`, `expire` and `slashCommitment` take it again as calldata (10 words).
struct QuotedJob {
    address requester;
    address provider;
    bytes32 modelId;
    uint256 inputCommitment;
    // the provider's price (escrowed with the fee on it at award)
    uint96 price;
    // stake held in Staking for the job (part of the provider's lockedOf): max(minStake, price * stakeMultiple)
    uint96 stakeLocked;
    // when the job was opened and awarded (one block)
    uint40 awardedAt;
    // the provider's deadline: min(intent.deadline, awardedAt + latency)
    uint40 due;
    // the protocol fee in force at award
    uint16 feeBps;
    // the model's layout (`LayoutWord`), read from the registry at award: delivery makes no registry call
    uint256 layout;
}

/// @title IQuoteMarket
/// @notice Request for quotes: providers quote off-chain (EIP-712 `Quote`s), the requester picks one, and one
/// transaction opens the intent and awards it to the quoted provider (first price: the provider is paid its
/// quote). Zk proof mode only. A provider that hands its output to the requester off-chain signs a result
/// commitment (EIP-712 `ResultCommitment(jobId, outputHash)`); if it then proves a different output on
/// chain, anyone holding the commitment can have it penalised by the job's stake.
interface IQuoteMarket is IResultCommitments {
    /// @notice A job was opened and awarded in one step. `terms` is what later calls pass back.
    event QuoteAwarded(
        bytes32 indexed jobId,
        address indexed requester,
        address indexed provider,
        QuotedJob terms,
        uint32 latency,
        address submitter
    );

    /// @notice One `deliverBatch`: `settled` has bit i set for each slot whose job settled (each with its own
    /// `Delivered` and `Settled`); `skipped` jobs each have a `BatchJobSkipped`; padding slots neither.
    event BatchDelivered(
        bytes32 indexed modelId, address indexed submitter, uint256 settled, uint256 skipped
    );
    /// @notice The job in `slot` failed its own checks (`reason`: a `SKIP_*` constant) and was left as it was.
    event BatchJobSkipped(bytes32 indexed jobId, uint256 slot, uint8 reason);
    /// @notice Entry `index` of an `openAwardedBatch` (job `jobId`) failed its own checks at inclusion (`reason`:
    /// an `AWARD_SKIP_*` constant) and was not opened; its nonce stays unused.
    event BatchAwardSkipped(bytes32 indexed jobId, uint256 index, uint8 reason);

    error QuoteForOtherJob(bytes32 quoteJobId, bytes32 jobId);
    error QuoteExpired(uint64 expiry, uint256 nowTime);
    error BadQuotePrice(uint256 price, uint256 maxPrice);
    error InvalidQuoteSigner(address provider, address signer);
    // TermsMismatch(bytes32 jobId): `IMarketEvents`'s, shared with the reverse market's terms
    error CallbackUnsupported(uint32 callbackGasLimit);
    /// @notice `deliverBatch` on a model that proves one job per proof (`batchSize` 1).
    error NotABatchModel(bytes32 modelId);
    /// @notice `deliver` on a batch model (`batchSize` > 1): its jobs settle by `deliverBatch`.
    error BatchModelNeedsBatch(bytes32 modelId, uint8 batchSize);
    /// @notice `deliverBatch` needs exactly `batchSize` slots in `jobIds`, `terms` and `outputs`.
    error BatchShapeMismatch(uint256 jobIds, uint256 terms, uint256 outputs, uint256 batchSize);
    /// @notice No job of the batch passed its own checks (all skipped): nothing to settle.
    error NothingSettled(bytes32 modelId);
    /// @notice The batch proof does not verify against the instances built from every slot.
    error BatchProofRejected(bytes32 modelId);
    /// @notice `openAwardedBatch` needs one quote and quote signature per intent, and one acceptance (maybe empty)
    /// per intent or none at all.
    error AwardBatchShapeMismatch(
        uint256 intents, uint256 quotes, uint256 quoteSignatures, uint256 acceptances
    );
    /// @notice `openAwardedBatch` takes at most `max` entries (its result is a bitmask).
    error AwardBatchTooLarge(uint256 entries, uint256 max);
    /// @notice No entry of an `openAwardedBatch` passed its own checks (all skipped, or none given).
    error NothingAwarded();

    /// @notice Opens `intent` and awards it to `quote.provider` at `quote.price` in one transaction. The caller
    /// is the requester (`acceptance` empty), or anyone carrying `acceptance`: the requester's EIP-712
    /// signature over this very quote's digest (`hashQuote`), which accepts the intent and the quote at once.
    /// Checks the quote's signature (the provider or its authorised solver), expiry, price <= maxPrice,
    /// now + latency <= deadline; locks max(minStake, price * stakeMultiple) of the provider's stake; consumes
    /// the intent's nonce; charges price + fee to the requester (its `owed` first, else its allowance).
    function openAwarded(
        Intent calldata intent,
        Quote calldata quote,
        bytes calldata quoteSignature,
        bytes calldata acceptance
    ) external returns (bytes32 jobId);

    /// @notice `openAwarded` for up to 256 entries in one transaction (entry i: `intents[i]`, `quotes[i]`,
    /// `quoteSignatures[i]`, `acceptances[i]`; `acceptances` empty: every entry's acceptance is empty, the
    /// sender being every entry's requester), for any mix of requesters, providers and models. What the signed
    /// data fixes is checked as by `openAwarded` and reverts with its errors (a wrong auction type or proof mode,
    /// an unknown model, a quote for another job or above maxPrice, a zero latency, an empty acceptance from a
    /// caller that is not the requester): the submitter can check it before sending. What the clock and other
    /// accounts decide at inclusion skips the entry (`BatchAwardSkipped` with an `AWARD_SKIP_*` reason) and the others
    /// are awarded, so that no requester or provider can make a batch fail by moving after it was built: an
    /// expiry, a signature (a solver deauthorised, an ERC-1271 answer), a nonce already used or cancelled (also
    /// by an earlier entry: the same intent twice opens once), the provider's stake beside its earlier entries
    /// (Staking's `lockableOf`, read once per provider), the requester's escrow beside its earlier entries.
    /// Each requester is charged once, the total of its awarded entries: from its credit when that covers the
    /// total, else all of it from its allowance (a token that refuses a transfer its allowance and balance
    /// cover reverts the batch). Each awarded job has its own `QuoteAwarded` and terms, exactly as by
    /// `openAwarded`. Reverts `NothingAwarded` when every entry is skipped.
    /// @return awarded bit i set when entry i was awarded.
    function openAwardedBatch(
        Intent[] calldata intents,
        Quote[] calldata quotes,
        bytes[] calldata quoteSignatures,
        bytes[] calldata acceptances
    ) external returns (uint256 awarded);

    /// @notice Hands in the output with its proof (the provider or its solver, by `terms.due`); settles at
    /// once: the provider is credited its price (`withdraw`), the fee accrues, the stake is unlocked.
    function deliver(bytes32 jobId, QuotedJob calldata terms, uint256[] calldata output, bytes calldata proof)
        external;

    /// @notice Settles up to `batchSize` zk jobs of the batch model `modelId` with one proof (the provider or
    /// its solver). Slot i of the proof is `jobIds[i]`'s (bytes32(0): a padding slot, nobody's job), with terms
    /// `terms[i]` and outputs `outputs[i]` (one job's `outputLength` each; every slot, padding included, since
    /// the proof is one statement about all of them). Job i is checked and paid on its own slot only: it must
    /// be Awarded with exactly these terms, for `modelId`, to the caller's provider, not past `due`, and
    /// (polycommit) `keccak256(proof[64*i : 64*i + 64])` must be its input commitment; hashed: the market
    /// writes `terms[i].inputCommitment` at instance `commitmentIndex + i` (for a padding or skipped slot,
    /// what the caller proved). A job failing its own checks is skipped (`BatchJobSkipped`) and stays as it
    /// was; the others settle as by `deliver`. Reverts only on a malformed call (`BatchShapeMismatch`,
    /// `OutputLengthMismatch`, `NotABatchModel`), when no job passes (`NothingSettled`) or when the proof does
    /// not verify (`BatchProofRejected`). Jobs may come from different requesters and quotes.
    /// @return settled bit i set when slot i's job settled.
    function deliverBatch(
        bytes32 modelId,
        bytes32[] calldata jobIds,
        QuotedJob[] calldata terms,
        uint256[][] calldata outputs,
        bytes calldata proof
    ) external returns (uint256 settled);

    /// @notice Anyone, past `terms.due` with nothing delivered: the whole lock is slashed to the requester and
    /// the escrow credited back to it.
    function expire(bytes32 jobId, QuotedJob calldata terms) external;

    /// @notice Anyone: a settled job whose provider signed a result commitment to `committedHash` but proved
    /// `deliveredHash` (keccak256(abi.encode(output))) on chain: the provider loses up to `terms.stakeLocked`
    /// of its free stake to the requester, once.
    function slashCommitment(
        bytes32 jobId,
        QuotedJob calldata terms,
        bytes32 deliveredHash,
        bytes32 committedHash,
        bytes calldata signature
    ) external;

    /// @notice Bit-flips the caller's nonces `mask` in bitmap word `word` (cancels unsubmitted intents).
    function invalidateNonces(uint256 word, uint256 mask) external;

    // admin and payouts (same as `IMarket`)
    function setParams(MarketParams calldata params) external;
    function applyParams() external;
    function setTreasury(address treasury) external;
    function withdrawFees() external returns (uint256);
    function withdraw() external returns (uint256);
    function pause() external;
    function unpause() external;

    // views
    function auctionType() external pure returns (uint8);
    function hashIntent(Intent calldata intent) external view returns (bytes32);
    function hashQuote(Quote calldata quote) external view returns (bytes32);
    function hashTerms(QuotedJob calldata terms) external pure returns (bytes32);
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
    /// @notice The job's state and its stored word (state in the low byte, a hash of its terms above).
    function jobState(bytes32 jobId) external view returns (JobState state, bytes32 word);
    function nonceBitmap(address owner, uint256 word) external view returns (uint256);
    function isNonceUsed(address owner, uint256 nonce) external view returns (bool);
    /// @notice What `openAwarded` charges for a quote at `price`: price + fee.
    function escrowFor(uint256 price) external view returns (uint256);
    function params() external view returns (MarketParams memory);
    function token() external view returns (address);
    function registry() external view returns (address);
    function staking() external view returns (address);
    function treasury() external view returns (address);
    function owed(address account) external view returns (uint256);
    function feesOwed() external view returns (uint256);
}
