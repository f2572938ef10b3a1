// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {MarketCore} from "./MarketCore.sol";
import {MarketExtension} from "./MarketExtension.sol";
import {
    AWARD_SKIP_ESCROW,
    AWARD_SKIP_LATE,
    AWARD_SKIP_NONCE,
    AWARD_SKIP_SIGNATURE,
    AWARD_SKIP_STAKE,
    IQuoteMarket,
    Quote,
    QuotedJob,
    SKIP_INPUT_MISMATCH,
    SKIP_LATE,
    SKIP_NOT_AUTHORIZED,
    SKIP_NOT_AWARDED,
    SKIP_OTHER_MODEL,
    SKIP_TERMS_MISMATCH
} from "./interfaces/IQuoteMarket.sol";
import {IResultCommitments} from "./interfaces/IResultCommitments.sol";
import {ResultCommitment} from "./libraries/ResultCommitment.sol";
import {IModelRegistry, ModelLayout, INPUT_POLYCOMMIT} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {IVerifier} from "./interfaces/IVerifier.sol";
import {IntentLib} from "./libraries/IntentLib.sol";
import {LayoutWord} from "./libraries/LayoutWord.sol";
import {AUCTION_QUOTE, Intent, JobState, MarketParams, PROOF_ZK} from "./MarketStructs.sol";

/// @title QuoteMarket
/// @notice Request for quotes, opened and awarded in one transaction from a provider-signed quote, settled
/// by a zk proof at delivery. Lean storage: one word per job (state + a hash of its `QuotedJob` terms); later
/// calls pass the terms again. Shares the market storage, credits, verification and payouts (`MarketCore`)
/// and the admin steps (`MarketExtension`, by DELEGATECALL) with the auction markets.
contract QuoteMarket is IQuoteMarket, MarketCore, EIP712, Ownable2Step, Pausable {
    using IntentLib for Intent;

    bytes32 internal constant QUOTE_TYPEHASH =
        keccak256("Quote(bytes32 jobId,address provider,uint256 price,uint32 latency,uint64 expiry)");
    /// @dev Entries of one `openAwardedBatch` (its result is a bitmask).
    uint256 internal constant MAX_AWARD_BATCH = 256;

    /// @dev What one `openAwardedBatch` has committed so far, per requester and per provider (memory, `n` rows
    /// each, `*Count` in use): the escrow each requester owes for its awarded entries and what it can pay, the
    /// stake each provider can still hold. The model layout of the last entry is cached (a batch is mostly
    /// one model: one registry call).
    struct Ledger {
        uint256 requesterCount;
        address[] requesters;
        // price + fee of the requester's awarded entries, charged once at the end
        uint256[] escrows;
        // what the market owes the requester (its credit pays the whole batch when it covers it)
        uint256[] credits;
        // min(allowance, balance), read the first time the credit does not cover (0 until then)
        uint256[] pullables;
        uint256 providerCount;
        address[] providers;
        // Staking's lockableOf at the provider's first entry, less what its awarded entries hold
        uint256[] rooms;
        bytes32 modelId;
        uint256 layout;
    }

    /// @dev Runs the admin steps on this contract's storage (see `MarketExtension`).
    address private immutable _extension;

    constructor(
        IERC20 token_,
        IModelRegistry registry_,
        IStaking staking_,
        address treasury_,
        address owner_,
        MarketParams memory params_
    ) MarketCore(token_, registry_, staking_) EIP712("Tender", "1") Ownable(owner_) {
        if (
            address(token_) == address(0) || address(registry_) == address(0)
                || address(staking_) == address(0) || treasury_ == address(0)
        ) revert ZeroAddress();
        address stakingToken = staking_.token();
        if (stakingToken != address(token_)) revert TokenMismatch(stakingToken, address(token_));
        _s().treasury = treasury_;
        emit TreasuryUpdated(treasury_);
        _setParams(params_);
        _extension = address(new MarketExtension(token_, registry_, staking_, AUCTION_QUOTE));
    }

    // ================================================================== entry

    /// @inheritdoc IQuoteMarket
    function openAwarded(
        Intent calldata intent,
        Quote calldata quote,
        bytes calldata quoteSignature,
        bytes calldata acceptance
    ) external nonReentrant whenNotPaused returns (bytes32 jobId) {
        jobId = _hashTypedDataV4(intent.hash());
        address requester = intent.requester;
        {
            bytes32 quoteDigest = _quoteDigest(quote);
            if (!_accepted(requester, quoteDigest, acceptance)) revert InvalidSignature(requester, jobId);
            _checkQuote(jobId, intent, quote);
            _requireInTime(intent, quote);
            _requireSigner(quote.provider, quoteDigest, quoteSignature, false);
        }
        uint256 layout = _checkIntent(intent);
        _useNonce(requester, intent.nonce);
        uint256 stake = _stakeFor(intent, quote.price);
        _charge(requester, _award(jobId, intent, quote, layout, stake));
    }

    /// @inheritdoc IQuoteMarket
    function openAwardedBatch(
        Intent[] calldata intents,
        Quote[] calldata quotes,
        bytes[] calldata quoteSignatures,
        bytes[] calldata acceptances
    ) external nonReentrant whenNotPaused returns (uint256 awarded) {
        uint256 n = intents.length;
        // no acceptances at all: the sender is every entry's requester (64 calldata bytes less per entry)
        if (
            quotes.length != n || quoteSignatures.length != n
                || (acceptances.length != 0 && acceptances.length != n)
        ) {
            revert AwardBatchShapeMismatch(n, quotes.length, quoteSignatures.length, acceptances.length);
        }
        if (n > MAX_AWARD_BATCH) revert AwardBatchTooLarge(n, MAX_AWARD_BATCH);
        Ledger memory l = _ledger(n);
        for (uint256 i; i < n; ++i) {
            (bytes32 jobId, uint8 reason) =
                _openEntry(l, intents[i], quotes[i], quoteSignatures[i], _acceptanceAt(acceptances, i));
            if (reason != 0) {
                emit BatchAwardSkipped(jobId, i, reason);
                continue;
            }
            awarded |= 1 << i;
        }
        if (awarded == 0) revert NothingAwarded();
        // one charge per requester: its credit when that covers its whole batch, else one pull (see `_canPay`)
        for (uint256 k; k < l.requesterCount; ++k) {
            _charge(l.requesters[k], l.escrows[k]);
        }
    }

    /// @inheritdoc IQuoteMarket
    function deliver(bytes32 jobId, QuotedJob calldata terms, uint256[] calldata output, bytes calldata proof)
        external
        nonReentrant
    {
        bytes32 termsHash = _requireTerms(jobId, terms, JobState.Awarded);
        address provider = terms.provider;
        _requireAuthorized(provider);
        uint256 due = terms.due;
        if (block.timestamp > due) revert DeliveryTooLate(jobId, due, block.timestamp);
        // the model's layout as the registry gave it at the award (bound by the word; models are immutable)
        ModelLayout memory m = LayoutWord.unpack(terms.layout);
        if (m.batchSize != 1) revert BatchModelNeedsBatch(terms.modelId, m.batchSize);
        if (output.length != m.outputLength) revert OutputLengthMismatch(output.length, m.outputLength);
        bytes32 outputHash = keccak256(abi.encode(output));
        // the delivered output stays provable against a result commitment: the word hashes it with the terms
        _s().quoted[jobId] = _word(keccak256(abi.encode(termsHash, outputHash)), JobState.Settled);
        uint256 src;
        assembly ("memory-safe") {
            src := output.offset
        }
        _verify(jobId, m, terms.inputCommitment, src, true, proof);
        emit Delivered(jobId, provider, output, outputHash, JobState.Settled, 0);
        _settle(jobId, terms);
    }

    /// @inheritdoc IQuoteMarket
    function deliverBatch(
        bytes32 modelId,
        bytes32[] calldata jobIds,
        QuotedJob[] calldata terms,
        uint256[][] calldata outputs,
        bytes calldata proof
    ) external nonReentrant returns (uint256 settled) {
        ModelLayout memory m = _registry.layoutOf(modelId);
        uint256 n = m.batchSize;
        if (n < 2) revert NotABatchModel(modelId);
        if (jobIds.length != n || terms.length != n || outputs.length != n) {
            revert BatchShapeMismatch(jobIds.length, terms.length, outputs.length, n);
        }
        uint256 skipped;
        (settled, skipped) =
            _deliverSlots(modelId, m.inputBinding == INPUT_POLYCOMMIT, jobIds, terms, outputs, proof);
        if (settled == 0) revert NothingSettled(modelId);
        if (!_verifyBatch(m, terms, outputs, proof)) revert BatchProofRejected(modelId);
        emit BatchDelivered(modelId, msg.sender, settled, skipped);
        for (uint256 i; i < n; ++i) {
            if (settled & (1 << i) != 0) _settle(jobIds[i], terms[i]);
        }
    }

    /// @inheritdoc IQuoteMarket
    function expire(bytes32 jobId, QuotedJob calldata terms) external nonReentrant {
        MarketStorage storage $ = _s();
        bytes32 termsHash = _requireTerms(jobId, terms, JobState.Awarded);
        uint256 due = terms.due;
        if (block.timestamp <= due) revert NotExpired(jobId, due);
        $.quoted[jobId] = _word(termsHash, JobState.Expired);
        address provider = terms.provider;
        address requester = terms.requester;
        uint256 locked = terms.stakeLocked;
        uint256 escrow = uint256(terms.price) + _fee(terms.price, terms.feeBps);
        emit Expired(jobId, provider, locked);
        emit Refunded(jobId, requester, escrow);
        _staking.forfeitHold(provider, jobId, locked, requester);
        _credit(requester, escrow);
    }

    /// @inheritdoc IQuoteMarket
    function slashCommitment(
        bytes32 jobId,
        QuotedJob calldata terms,
        bytes32 deliveredHash,
        bytes32 committedHash,
        bytes calldata signature
    ) external nonReentrant {
        bytes32 settled = _requireSettled(jobId, terms, deliveredHash);
        if (committedHash == deliveredHash) revert CommitmentMatches(jobId);
        bytes32 digest = _hashTypedDataV4(ResultCommitment.structHash(jobId, committedHash));
        _requireSigner(terms.provider, digest, signature, true);
        _s().quoted[jobId] = _word(settled, JobState.Slashed);
        // the lock was released at settlement: the penalty comes from the provider's free (or unstaking) stake
        uint256 taken = _staking.penalize(terms.provider, jobId, terms.stakeLocked, terms.requester);
        emit CommitmentSlashed(jobId, terms.provider, committedHash, deliveredHash, taken);
    }

    /// @inheritdoc IQuoteMarket
    function invalidateNonces(uint256 word, uint256 mask) external {
        MarketStorage storage $ = _s();
        $.nonceBitmap[msg.sender][word] |= mask;
        emit NoncesInvalidated(msg.sender, word, mask);
    }

    // ================================================================== admin (run by the extension)

    /// @inheritdoc IQuoteMarket
    function setParams(MarketParams calldata) external onlyOwner {
        _forward();
    }

    /// @inheritdoc IQuoteMarket
    function applyParams() external {
        _forward();
    }

    /// @inheritdoc IQuoteMarket
    function setTreasury(address) external onlyOwner {
        _forward();
    }

    /// @inheritdoc IQuoteMarket
    function withdrawFees() external returns (uint256) {
        _forward();
    }

    /// @inheritdoc IQuoteMarket
    function withdraw() external returns (uint256) {
        _forward();
    }

    /// @inheritdoc IQuoteMarket
    function pause() external onlyOwner {
        _pause();
    }

    /// @inheritdoc IQuoteMarket
    function unpause() external onlyOwner {
        _unpause();
    }

    // ================================================================== views

    /// @inheritdoc IQuoteMarket
    function auctionType() external pure returns (uint8) {
        return AUCTION_QUOTE;
    }

    /// @inheritdoc IQuoteMarket
    function hashIntent(Intent calldata intent) external view returns (bytes32) {
        return _hashTypedDataV4(intent.hash());
    }

    /// @inheritdoc IQuoteMarket
    function hashQuote(Quote calldata quote) external view returns (bytes32) {
        return _quoteDigest(quote);
    }

    /// @inheritdoc IResultCommitments
    function hashCommitment(bytes32 jobId, bytes32 outputHash) external view returns (bytes32) {
        return _hashTypedDataV4(ResultCommitment.structHash(jobId, outputHash));
    }

    /// @inheritdoc IQuoteMarket
    function hashTerms(QuotedJob calldata terms) external pure returns (bytes32) {
        return keccak256(abi.encode(terms));
    }

    /// @inheritdoc IQuoteMarket
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IQuoteMarket
    function jobState(bytes32 jobId) external view returns (JobState state, bytes32 word) {
        uint256 w = _s().quoted[jobId];
        return (JobState(uint8(w)), bytes32(w));
    }

    /// @inheritdoc IQuoteMarket
    function nonceBitmap(address owner_, uint256 word) external view returns (uint256) {
        return _s().nonceBitmap[owner_][word];
    }

    /// @inheritdoc IQuoteMarket
    function isNonceUsed(address owner_, uint256 nonce) external view returns (bool) {
        return _s().nonceBitmap[owner_][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IQuoteMarket
    function escrowFor(uint256 price) external view returns (uint256) {
        return price + price * _s().params.feeBps / BPS;
    }

    /// @inheritdoc IQuoteMarket
    function params() external view returns (MarketParams memory) {
        return _s().params;
    }

    /// @inheritdoc IQuoteMarket
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IQuoteMarket
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IQuoteMarket
    function staking() external view returns (address) {
        return address(_staking);
    }

    /// @inheritdoc IQuoteMarket
    function treasury() external view returns (address) {
        return _s().treasury;
    }

    /// @inheritdoc IQuoteMarket
    function owed(address account) external view returns (uint256) {
        return _s().owed[account];
    }

    /// @inheritdoc IQuoteMarket
    function feesOwed() external view returns (uint256) {
        return _s().feesOwed;
    }

    // ================================================================== private

    /// @dev The quote is for this job and within the requester's price, with a latency (what the signed data fixes;
    /// the clock's part is `_lateFault`).
    function _checkQuote(bytes32 jobId, Intent calldata intent, Quote calldata quote) private pure {
        if (quote.jobId != jobId) revert QuoteForOtherJob(quote.jobId, jobId);
        if (quote.price == 0 || quote.price > intent.maxPrice) {
            revert BadQuotePrice(quote.price, intent.maxPrice);
        }
        if (quote.latency == 0) revert ZeroLatency();
    }

    /// @dev 0 when the intent and the quote can still be taken now and the deadline leaves the quote's latency;
    /// else 1 (the intent expired), 2 (the quote expired) or 3 (too little time left for the latency).
    function _lateFault(Intent calldata intent, Quote calldata quote) private view returns (uint256) {
        if (block.timestamp >= intent.expiry) return 1;
        if (block.timestamp >= quote.expiry) return 2;
        if (block.timestamp + quote.latency > intent.deadline) return 3;
        return 0;
    }

    /// @dev Reverts with the error `_lateFault` names.
    function _requireInTime(Intent calldata intent, Quote calldata quote) private view {
        uint256 fault = _lateFault(intent, quote);
        if (fault == 1) revert IntentExpired(intent.expiry, block.timestamp);
        if (fault == 2) revert QuoteExpired(quote.expiry, block.timestamp);
        if (fault == 3) {
            uint256 deadline = intent.deadline;
            revert LatencyTooLong(quote.latency, deadline > block.timestamp ? deadline - block.timestamp : 0);
        }
    }

    /// @dev Whether the requester takes this quote: it is the caller (`acceptance` empty; anyone else reverts
    /// `NotRequester`), or `acceptance` is its signature (ECDSA or ERC-1271) over the quote's digest.
    function _accepted(address requester, bytes32 quoteDigest, bytes calldata acceptance)
        private
        view
        returns (bool)
    {
        if (acceptance.length == 0) {
            if (msg.sender != requester) revert NotRequester(msg.sender, requester);
            return true;
        }
        return SignatureChecker.isValidSignatureNow(requester, quoteDigest, acceptance);
    }

    /// @dev max(minStake, price * stakeMultiple), which the job's terms carry in 96 bits.
    function _stakeFor(Intent calldata intent, uint256 price) private view returns (uint256 stake) {
        stake = price * _s().params.stakeMultiple;
        if (stake < intent.minStake) stake = intent.minStake;
        if (stake > type(uint96).max) revert ValueTooLarge(stake, type(uint96).max);
    }

    /// @dev Credits the provider its price, accrues the fee and releases the stake (the word is Settled).
    function _settle(bytes32 jobId, QuotedJob calldata terms) private {
        MarketStorage storage $ = _s();
        address provider = terms.provider;
        uint256 price = terms.price;
        uint256 fee = _fee(price, terms.feeBps);
        emit Settled(jobId, provider, price, fee, 0, block.timestamp - terms.awardedAt);
        // releases the job's own hold (its terms are the word's); Staking is the immutable, trusted counterpart
        // slither-disable-next-line reentrancy-no-eth
        _staking.freeHold(provider, terms.stakeLocked, fee);
        // fee <= price < 2**96
        $.feesOwed += uint96(fee);
        _credit(provider, price);
    }

    /// @dev Records the job's word and holds its `stake`; returns its escrow (price + fee), which the caller charges.
    function _award(
        bytes32 jobId,
        Intent calldata intent,
        Quote calldata quote,
        uint256 layout,
        uint256 stake
    ) private returns (uint256 escrow) {
        MarketStorage storage $ = _s();
        uint256 price = quote.price;
        uint256 due = block.timestamp + quote.latency;
        if (due > intent.deadline) due = intent.deadline;
        // price <= maxPrice < 2**96, stake < 2**96 (`_stakeFor`) and deadline < 2**40 (checked in _checkIntent)
        QuotedJob memory t = QuotedJob({
            requester: intent.requester,
            provider: quote.provider,
            modelId: intent.modelId,
            inputCommitment: intent.inputCommitment,
            price: uint96(price),
            stakeLocked: uint96(stake),
            awardedAt: uint40(block.timestamp),
            due: uint40(due),
            feeBps: $.params.feeBps,
            layout: layout
        });
        $.quoted[jobId] = _word(keccak256(abi.encode(t)), JobState.Awarded);
        emit QuoteAwarded(jobId, t.requester, t.provider, t, quote.latency, msg.sender);
        uint256 fee = _fee(price, t.feeBps);
        // Staking reverts InsufficientStake (same selector as the market's) when the provider cannot hold it; the
        // amount lives in the job's terms (no per-job lock slot in Staking: ~22k gas less)
        _staking.placeHold(t.provider, stake, fee);
        escrow = price + fee;
    }

    /// @dev One entry of `openAwardedBatch`: the checks of `openAwarded` on what the signed data fixes (reverting
    /// with its errors: the submitter can check those before sending), then, as an `AWARD_SKIP_*` reason, on what
    /// the clock and other accounts decide at inclusion: expiries, signatures (a solver deauthorised, an ERC-1271
    /// wallet's answer), the nonce (also used by an earlier entry), the provider's stake and the requester's
    /// escrow beside its earlier entries (`l`). An entry that passes is awarded (its escrow added to its
    /// requester's row of `l`); a skipped one leaves nothing behind.
    function _openEntry(
        Ledger memory l,
        Intent calldata intent,
        Quote calldata quote,
        bytes calldata quoteSignature,
        bytes calldata acceptance
    ) private returns (bytes32 jobId, uint8 reason) {
        jobId = _hashTypedDataV4(intent.hash());
        uint256 layout = _batchLayout(l, intent);
        _checkQuote(jobId, intent, quote);
        {
            bytes32 quoteDigest = _quoteDigest(quote);
            bool accepted = _accepted(intent.requester, quoteDigest, acceptance);
            if (_lateFault(intent, quote) != 0) return (jobId, AWARD_SKIP_LATE);
            if (!accepted) return (jobId, AWARD_SKIP_SIGNATURE);
            (bool signed,) = _signerOf(quote.provider, quoteDigest, quoteSignature);
            if (!signed) return (jobId, AWARD_SKIP_SIGNATURE);
        }
        uint256 stake = _stakeFor(intent, quote.price);
        (uint256 r, uint8 fault) = _reserve(l, intent, quote, stake);
        if (fault != 0) return (jobId, fault);
        l.escrows[r] += _award(jobId, intent, quote, layout, stake);
    }

    /// @dev Uses the entry's nonce, and takes its stake from its provider's room in `l`, when the nonce is unused,
    /// the provider has room and the requester can pay (else the `AWARD_SKIP_*` and nothing changes). Returns the
    /// requester's row.
    function _reserve(Ledger memory l, Intent calldata intent, Quote calldata quote, uint256 stake)
        private
        returns (uint256 r, uint8 fault)
    {
        address requester = intent.requester;
        uint256 nonce = intent.nonce;
        mapping(uint256 => uint256) storage bitmap = _s().nonceBitmap[requester];
        uint256 bits = bitmap[nonce >> 8];
        uint256 bit = 1 << (nonce & 0xff);
        if (bits & bit != 0) return (0, AWARD_SKIP_NONCE);
        uint256 p = _providerRow(l, quote.provider);
        uint256 room = l.rooms[p];
        if (stake > room) return (0, AWARD_SKIP_STAKE);
        r = _requesterRow(l, requester);
        if (!_canPay(l, r, quote.price + _fee(quote.price, _s().params.feeBps))) {
            return (r, AWARD_SKIP_ESCROW);
        }
        bitmap[nonce >> 8] = bits | bit;
        unchecked {
            // stake <= room (checked above)
            l.rooms[p] = room - stake;
        }
    }

    /// @dev Entry `i`'s acceptance: empty when the batch carries none.
    function _acceptanceAt(bytes[] calldata acceptances, uint256 i) private pure returns (bytes calldata) {
        return acceptances.length == 0 ? msg.data[0:0] : acceptances[i];
    }

    /// @dev The intent's checks (`_checkIntent`) with the layout of the batch's previous model reused: the
    /// registry is called once per model run (models are immutable once registered).
    function _batchLayout(Ledger memory l, Intent calldata intent) private view returns (uint256 layout) {
        bytes32 modelId = intent.modelId;
        if (l.layout != 0 && modelId == l.modelId) {
            _checkIntentTerms(intent);
            return l.layout;
        }
        layout = _checkIntent(intent);
        (l.modelId, l.layout) = (modelId, layout);
    }

    function _ledger(uint256 n) private pure returns (Ledger memory l) {
        l.requesters = new address[](n);
        l.escrows = new uint256[](n);
        l.credits = new uint256[](n);
        l.pullables = new uint256[](n);
        l.providers = new address[](n);
        l.rooms = new uint256[](n);
    }

    /// @dev The provider's row in `l` (added, with Staking's `lockableOf`, at its first entry).
    function _providerRow(Ledger memory l, address provider) private view returns (uint256 p) {
        uint256 count = l.providerCount;
        for (; p < count; ++p) {
            if (l.providers[p] == provider) return p;
        }
        l.providers[p] = provider;
        l.rooms[p] = _staking.lockableOf(provider);
        l.providerCount = p + 1;
    }

    /// @dev The requester's row in `l` (added, with its credit in this market, at its first entry).
    function _requesterRow(Ledger memory l, address requester) private view returns (uint256 r) {
        uint256 count = l.requesterCount;
        for (; r < count; ++r) {
            if (l.requesters[r] == requester) return r;
        }
        l.requesters[r] = requester;
        l.credits[r] = _s().owed[requester];
        l.requesterCount = r + 1;
    }

    /// @dev Whether requester row `r` can pay `escrow` more, as `_charge` will take its total: from its credit
    /// when that covers the total, else all of it from its allowance (bounded by its balance, read once).
    function _canPay(Ledger memory l, uint256 r, uint256 escrow) private view returns (bool) {
        uint256 total = l.escrows[r] + escrow;
        if (total <= l.credits[r]) return true;
        uint256 pullable = l.pullables[r];
        if (pullable == 0) {
            address requester = l.requesters[r];
            pullable = _token.allowance(requester, address(this));
            uint256 balance = _token.balanceOf(requester);
            if (balance < pullable) pullable = balance;
            // 0 stays "not read": a requester with nothing to pull re-reads (and is refused) each time
            l.pullables[r] = pullable;
        }
        return total <= pullable;
    }

    /// @dev The intent's fields this market uses: its type, a zk model, maxPrice and minStake in 96 bits, deadline
    /// in 40 bits, no start price, no callback (its expiry: `_lateFault`). The auction window, region, price weight
    /// and failover flag are the off-chain quote round's (the requester picked the quote). Returns the model's
    /// layout word (`LayoutWord`), read in the same registry call as its proof modes.
    function _checkIntent(Intent calldata intent) private view returns (uint256 layout) {
        _checkIntentTerms(intent);
        uint8 modes;
        (layout, modes) = _registry.recordWordAndModesOf(intent.modelId);
        if (modes == 0) revert UnknownModel(intent.modelId);
        if (modes & (1 << PROOF_ZK) == 0) revert UnsupportedProofMode(intent.modelId, PROOF_ZK);
    }

    /// @dev `_checkIntent` without the registry call (its model's layout is known).
    function _checkIntentTerms(Intent calldata intent) private view {
        if (intent.auctionType != AUCTION_QUOTE) revert WrongAuctionType(intent.auctionType, AUCTION_QUOTE);
        if (intent.proofMode != PROOF_ZK) revert UnsupportedProofMode(intent.modelId, intent.proofMode);
        if (intent.maxPrice > type(uint96).max) revert ValueTooLarge(intent.maxPrice, type(uint96).max);
        if (intent.minStake > type(uint96).max) revert ValueTooLarge(intent.minStake, type(uint96).max);
        if (intent.startPrice != 0) revert BadStartPrice(intent.startPrice, intent.maxPrice);
        if (intent.deadline > type(uint40).max) {
            revert BadWindow(intent.auctionWindow, intent.deadline, block.timestamp);
        }
        if (intent.callbackGasLimit != 0) revert CallbackUnsupported(intent.callbackGasLimit);
    }

    /// @dev `signature` over `digest` must be the provider's or its solver's (`_signerOf`).
    function _requireSigner(address provider, bytes32 digest, bytes calldata signature, bool commitment)
        private
        view
    {
        (bool ok, address signer) = _signerOf(provider, digest, signature);
        if (ok) return;
        if (commitment) revert InvalidCommitmentSigner(provider, signer);
        revert InvalidQuoteSigner(provider, signer);
    }

    /// @dev Whether `signature` over `digest` is the provider's (ECDSA, or ERC-1271 for a contract provider), or
    /// (ECDSA only) that of a solver the provider authorised in Staking; `signer` is the key it recovers to.
    function _signerOf(address provider, bytes32 digest, bytes calldata signature)
        private
        view
        returns (bool ok, address signer)
    {
        ECDSA.RecoverError err;
        // the third value is the error's argument (a bad length or s), not needed: any error is a refusal
        // slither-disable-next-line unused-return
        (signer, err,) = ECDSA.tryRecover(digest, signature);
        bool recovered = err == ECDSA.RecoverError.NoError && signer != address(0);
        if (recovered && (signer == provider || _staking.isAuthorized(provider, signer))) {
            return (true, signer);
        }
        // a contract provider signs by ERC-1271 (its signature may also happen to recover to some key)
        ok = provider.code.length != 0
            && SignatureChecker.isValidERC1271SignatureNow(provider, digest, signature);
    }

    /// @dev The first pass of `deliverBatch`: each slot's job either passes its own checks (`_batchSkip`) and
    /// is marked Settled (its bit in `settled`, its `Delivered`), or is skipped (`BatchJobSkipped`); padding
    /// slots (job id 0) are neither. A job's word is Settled before the next slot is looked at, so the same
    /// job in a later slot is skipped as not Awarded.
    function _deliverSlots(
        bytes32 modelId,
        bool polycommit,
        bytes32[] calldata jobIds,
        QuotedJob[] calldata terms,
        uint256[][] calldata outputs,
        bytes calldata proof
    ) private returns (uint256 settled, uint256 skipped) {
        for (uint256 i; i < jobIds.length; ++i) {
            bytes32 jobId = jobIds[i];
            if (jobId == bytes32(0)) continue;
            uint8 reason = _batchSkip(modelId, polycommit, jobId, terms[i], i, proof);
            if (reason != 0) {
                ++skipped;
                emit BatchJobSkipped(jobId, i, reason);
                continue;
            }
            settled |= 1 << i;
            _markDelivered(jobId, terms[i], outputs[i]);
        }
    }

    /// @dev Records a batch job's delivery: its word Settled over its terms and output (as `deliver`).
    function _markDelivered(bytes32 jobId, QuotedJob calldata t, uint256[] calldata output) private {
        bytes32 outputHash = keccak256(abi.encode(output));
        _s().quoted[jobId] =
            _word(keccak256(abi.encode(keccak256(abi.encode(t)), outputHash)), JobState.Settled);
        emit Delivered(jobId, t.provider, output, outputHash, JobState.Settled, 0);
    }

    /// @dev Why job `jobId` in slot `slot` of a batch cannot settle (a `SKIP_*`), or 0 when it can.
    function _batchSkip(
        bytes32 modelId,
        bool polycommit,
        bytes32 jobId,
        QuotedJob calldata t,
        uint256 slot,
        bytes calldata proof
    ) private view returns (uint8) {
        uint256 word = _s().quoted[jobId];
        if (JobState(uint8(word)) != JobState.Awarded) return SKIP_NOT_AWARDED;
        if (word != _word(keccak256(abi.encode(t)), JobState.Awarded)) return SKIP_TERMS_MISMATCH;
        if (t.modelId != modelId) return SKIP_OTHER_MODEL;
        address provider = t.provider;
        if (provider != msg.sender && !_staking.isAuthorized(provider, msg.sender)) {
            return SKIP_NOT_AUTHORIZED;
        }
        if (block.timestamp > t.due) return SKIP_LATE;
        if (polycommit) {
            uint256 commitment = t.inputCommitment;
            bool bound;
            assembly ("memory-safe") {
                // the slot's point, hashed in scratch space (a proof too short for it: not bound)
                let at := shl(6, slot)
                if iszero(lt(proof.length, add(at, 0x40))) {
                    calldatacopy(0x00, add(proof.offset, at), 0x40)
                    bound := eq(keccak256(0x00, 0x40), commitment)
                }
            }
            if (!bound) return SKIP_INPUT_MISMATCH;
        }
        return 0;
    }

    /// @dev Calls `m.verifier.verifyProof(proof, instances)` once for the whole batch: zeros, slot i's
    /// `terms[i].inputCommitment` at `commitmentIndex + i` (hashed inputs) and `outputs[i]` at
    /// `outputOffset + outputLength * i`. The call data is built past the free memory pointer, the proof copied
    /// once (as `MarketCore._verify`). A false return, a revert or return data that is not one word is false.
    function _verifyBatch(
        ModelLayout memory m,
        QuotedJob[] calldata terms,
        uint256[][] calldata outputs,
        bytes calldata proof
    ) private returns (bool ok) {
        (uint256 data, uint256 end) = _batchCall(m, proof);
        _fillSlots(end - (uint256(m.instanceCount) << 5), m, terms, outputs);
        address verifier = m.verifier;
        assembly ("memory-safe") {
            ok := call(gas(), verifier, 0, data, sub(end, data), 0x00, 0x20)
            ok := and(ok, and(eq(returndatasize(), 0x20), eq(mload(0x00), 1)))
        }
    }

    /// @dev Writes `verifyProof(proof, zeros)` past the free memory pointer (and moves it past): the call data
    /// from `data` to `end`, the instances the last `instanceCount` words.
    function _batchCall(ModelLayout memory m, bytes calldata proof)
        private
        pure
        returns (uint256 data, uint256 end)
    {
        uint256 count = m.instanceCount;
        bytes4 selector = IVerifier.verifyProof.selector;
        assembly ("memory-safe") {
            data := mload(0x40)
            mstore(data, selector)
            let args := add(data, 0x04)
            let padded := and(add(proof.length, 0x1f), not(0x1f))
            mstore(args, 0x40)
            mstore(add(args, 0x20), add(0x60, padded))
            mstore(add(args, 0x40), proof.length)
            mstore(add(add(args, 0x40), padded), 0)
            calldatacopy(add(args, 0x60), proof.offset, proof.length)
            let instances := add(add(args, 0x60), padded)
            mstore(instances, count)
            let words := add(instances, 0x20)
            // zeros, copied from past the end of calldata
            calldatacopy(words, calldatasize(), shl(5, count))
            end := add(words, shl(5, count))
            mstore(0x40, end)
        }
    }

    /// @dev Writes each slot's instances at `words` (the instance vector in memory): hashed inputs,
    /// `terms[i].inputCommitment` at `commitmentIndex + i`; `outputs[i]` at `outputOffset + outputLength * i`.
    function _fillSlots(
        uint256 words,
        ModelLayout memory m,
        QuotedJob[] calldata terms,
        uint256[][] calldata outputs
    ) private pure {
        bool hashed = m.inputBinding != INPUT_POLYCOMMIT;
        uint256 commitmentAt = words + (uint256(m.commitmentIndex) << 5);
        uint256 outputAt = words + (uint256(m.outputOffset) << 5);
        uint256 length = m.outputLength;
        for (uint256 i; i < terms.length; ++i) {
            uint256[] calldata output = outputs[i];
            if (output.length != length) revert OutputLengthMismatch(output.length, length);
            uint256 commitment = terms[i].inputCommitment;
            assembly ("memory-safe") {
                if hashed { mstore(add(commitmentAt, shl(5, i)), commitment) }
                calldatacopy(add(outputAt, mul(shl(5, length), i)), output.offset, shl(5, length))
            }
        }
    }

    /// @dev The job's word must be Settled over the hash of `terms` and `deliveredHash`; returns that hash.
    function _requireSettled(bytes32 jobId, QuotedJob calldata terms, bytes32 deliveredHash)
        private
        view
        returns (bytes32 settled)
    {
        uint256 word = _s().quoted[jobId];
        JobState state = JobState(uint8(word));
        if (state != JobState.Settled) revert InvalidState(jobId, state);
        settled = keccak256(abi.encode(keccak256(abi.encode(terms)), deliveredHash));
        if (word != _word(settled, JobState.Settled)) revert TermsMismatch(jobId);
    }

    /// @dev The job's word must be `state` over the hash of `terms`; returns that hash.
    function _requireTerms(bytes32 jobId, QuotedJob calldata terms, JobState state)
        private
        view
        returns (bytes32 termsHash)
    {
        uint256 word = _s().quoted[jobId];
        JobState current = JobState(uint8(word));
        if (current != state) revert InvalidState(jobId, current);
        termsHash = keccak256(abi.encode(terms));
        if (word != _word(termsHash, state)) revert TermsMismatch(jobId);
    }

    function _quoteDigest(Quote calldata q) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(QUOTE_TYPEHASH, q.jobId, q.provider, q.price, q.latency, q.expiry))
        );
    }

    /// @dev The hash's top 248 bits and the state in the low byte.
    function _word(bytes32 h, JobState state) private pure returns (uint256) {
        return (uint256(h) & ~uint256(0xff)) | uint256(uint8(state));
    }

    /// @dev Runs the calling entry in the extension on this contract's storage (a proxy forward).
    function _forward() private {
        address ext = _extension;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), ext, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            // intended: the calling entry returns the extension's result as its own
            // slither-disable-next-line incorrect-return
            return(0, returndatasize())
        }
    }
}
