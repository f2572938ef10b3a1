// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IMarket} from "./interfaces/IMarket.sol";
import {IModelRegistry, ModelLayout, INPUT_POLYCOMMIT} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {IVerifier} from "./interfaces/IVerifier.sol";
import {ITenderConsumer} from "./interfaces/ITenderConsumer.sol";
import {IntentLib} from "./libraries/IntentLib.sol";
import {
    Intent,
    Job,
    JobRecord,
    JobState,
    MarketParams,
    PROOF_ZK,
    PROOF_OPTIMISTIC
} from "./MarketStructs.sol";

/// @title BaseMarket
/// @notice Everything both auction types share: intent validation, escrow, nonces, award bookkeeping,
/// delivery, verification, settlement, disputes, expiry and refunds. An auction type overrides only how
/// the price and the winner are resolved (`_checkPricing`, `_awardOnDelivery`, `_refundable`, `_failover`)
/// and adds its own entry (`bid`/`award` or `fill`).
abstract contract BaseMarket is IMarket, EIP712, Ownable2Step, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using IntentLib for Intent;

    uint16 internal constant _MAX_FEE_BPS = 500;
    uint256 internal constant BPS = 10_000;
    /// @dev Gas kept back for the code after the consumer callback returns.
    uint256 internal constant CALLBACK_RESERVE = 10_000;
    /// @dev Revert data of a failed callback kept in `CallbackFailed`.
    uint256 internal constant CALLBACK_REASON_BYTES = 128;

    IERC20 internal immutable _token;
    IModelRegistry internal immutable _registry;
    IStaking internal immutable _staking;

    address private _treasury;
    /// @dev Fees accrued at settlement, paid to the treasury by `withdrawFees`. Shares the treasury's slot
    /// (never zero), so a settlement adds to it for ~5k gas instead of a ~10k transfer.
    uint96 private _feesOwed;
    MarketParams private _params;
    mapping(bytes32 jobId => JobRecord) private _jobs;
    mapping(bytes32 jobId => uint256[]) private _outputs;
    /// @dev The model's layout, copied from the registry at posting (models are immutable), so that
    /// delivery reads one slot instead of calling the registry; cleared on settlement (storage refund).
    mapping(bytes32 jobId => ModelLayout) private _layouts;
    mapping(address owner => mapping(uint256 word => uint256 bits)) private _nonceBitmap;
    /// @dev What the market owes each account (payments, refunds, returned bonds): paid out by `withdraw`,
    /// spent first by the account's next escrow or bond when it covers it. Crediting a slot that is already
    /// non-zero costs ~5k gas against ~10k for a token transfer, and a recipient that cannot receive tokens
    /// (a blocklisted address, a hostile token hook) can never block a settlement or an expiry.
    mapping(address account => uint256 amount) private _owed;

    constructor(
        IERC20 token_,
        IModelRegistry registry_,
        IStaking staking_,
        address treasury_,
        address owner_,
        MarketParams memory params_
    ) EIP712("Tender", "1") Ownable(owner_) {
        if (
            address(token_) == address(0) || address(registry_) == address(0)
                || address(staking_) == address(0) || treasury_ == address(0)
        ) revert ZeroAddress();
        _token = token_;
        _registry = registry_;
        _staking = staking_;
        _treasury = treasury_;
        emit TreasuryUpdated(treasury_);
        _setParams(params_);
    }

    // ================================================================== entry

    /// @inheritdoc IMarket
    function post(Intent calldata intent) external nonReentrant whenNotPaused returns (bytes32 jobId) {
        if (msg.sender != intent.requester) revert NotRequester(msg.sender, intent.requester);
        jobId = _hashTypedDataV4(intent.hash());
        _open(jobId, intent);
    }

    /// @inheritdoc IMarket
    function submitSigned(Intent calldata intent, bytes calldata signature)
        external
        nonReentrant
        whenNotPaused
        returns (bytes32 jobId)
    {
        jobId = _hashTypedDataV4(intent.hash());
        // EOAs: OZ ECDSA refuses high-s and zero-address recovery (returns false here); contracts: ERC-1271
        if (!SignatureChecker.isValidSignatureNow(intent.requester, jobId, signature)) {
            revert InvalidSignature(intent.requester, jobId);
        }
        _open(jobId, intent);
    }

    /// @inheritdoc IMarket
    function invalidateNonces(uint256 word, uint256 mask) external {
        _nonceBitmap[msg.sender][word] |= mask;
        emit NoncesInvalidated(msg.sender, word, mask);
    }

    // ================================================================== delivery and disputes

    /// @inheritdoc IMarket
    function deliver(bytes32 jobId, uint256[] calldata output, bytes calldata proof) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        if (j.state == JobState.Open) _awardOnDelivery(jobId, j);
        if (j.state != JobState.Awarded) revert InvalidState(jobId, j.state);
        address provider = j.provider;
        _requireAuthorized(provider);
        uint256 due = _providerDeadline(j);
        if (block.timestamp > due) revert DeliveryTooLate(jobId, due, block.timestamp);
        ModelLayout memory m = _layouts[jobId];
        if (output.length != m.outputLength) revert OutputLengthMismatch(output.length, m.outputLength);
        bytes32 outputHash = keccak256(abi.encode(output));

        if (j.proofMode == PROOF_ZK || proof.length != 0) {
            // state and deliveredAt share a slot: one write; a rejected proof reverts both
            j.state = JobState.Settled;
            j.deliveredAt = uint40(block.timestamp);
            uint256 src;
            assembly ("memory-safe") {
                src := output.offset
            }
            _verify(jobId, m, j.inputCommitment, src, true, proof);
            emit Delivered(jobId, provider, output, outputHash, JobState.Settled, 0);
            _settle(jobId, j, 0);
            // the calldata output is copied to memory only for a callback
            if (j.callbackGasLimit != 0) _callback(jobId, j, output);
        } else {
            _deliverOptimistic(jobId, j, provider, output, outputHash, m.auditRateBps);
        }
    }

    /// @inheritdoc IMarket
    function challenge(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        if (j.state != JobState.Delivered) revert InvalidState(jobId, j.state);
        uint40 end = j.disputeEnd;
        if (block.timestamp >= end) revert ChallengeWindowClosed(jobId, end);
        MarketParams storage p = _params;
        uint96 bond = p.challengeBond;
        uint40 proofDeadline = uint40(block.timestamp + p.proofWindow);
        j.state = JobState.Challenged;
        j.disputeEnd = proofDeadline;
        j.challenger = msg.sender;
        j.challengeBond = bond;
        emit Challenged(jobId, msg.sender, bond, proofDeadline);
        _collect(msg.sender, bond);
    }

    /// @inheritdoc IMarket
    function prove(bytes32 jobId, bytes calldata proof) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        JobState s = j.state;
        if (s != JobState.Challenged && s != JobState.ProofRequired) revert InvalidState(jobId, s);
        _requireAuthorized(j.provider);
        uint40 end = j.disputeEnd;
        if (block.timestamp > end) revert ProofDeadlinePassed(jobId, end);
        uint256[] memory output = _outputs[jobId];
        uint256 src;
        assembly ("memory-safe") {
            src := add(output, 0x20)
        }
        _verify(jobId, _layouts[jobId], j.inputCommitment, src, false, proof);
        uint256 bond = j.challengeBond;
        j.state = JobState.Settled;
        emit Proved(jobId, msg.sender, bond);
        _settle(jobId, j, bond);
        _callback(jobId, j, output);
    }

    /// @inheritdoc IMarket
    function finalize(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        if (j.state != JobState.Delivered) revert InvalidState(jobId, j.state);
        uint40 end = j.disputeEnd;
        if (block.timestamp < end) revert ChallengeWindowOpen(jobId, end);
        j.state = JobState.Settled;
        _settle(jobId, j, 0);
        if (j.callbackGasLimit != 0) _callback(jobId, j, _outputs[jobId]);
    }

    /// @inheritdoc IMarket
    function expire(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        JobState s = j.state;
        if (s == JobState.Awarded) {
            _expireDelivery(jobId, j);
        } else if (s == JobState.Challenged || s == JobState.ProofRequired) {
            _expireProof(jobId, j);
        } else {
            revert InvalidState(jobId, s);
        }
    }

    /// @inheritdoc IMarket
    function refund(bytes32 jobId) external nonReentrant {
        JobRecord storage j = _jobs[jobId];
        if (j.state != JobState.Open) revert InvalidState(jobId, j.state);
        uint40 end = j.auctionEnd;
        if (block.timestamp < end) revert AuctionNotEnded(jobId, end);
        if (!_refundable(jobId, j)) revert NotRefundable(jobId);
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    // ================================================================== admin

    /// @inheritdoc IMarket
    function setParams(MarketParams calldata params_) external onlyOwner {
        _setParams(params_);
    }

    /// @inheritdoc IMarket
    function setTreasury(address treasury_) external onlyOwner {
        if (treasury_ == address(0)) revert ZeroAddress();
        _treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    /// @inheritdoc IMarket
    function withdrawFees() external nonReentrant returns (uint256 amount) {
        address to = _treasury;
        amount = _feesOwed;
        _feesOwed = 0;
        emit FeesWithdrawn(to, amount);
        if (amount != 0) _token.safeTransfer(to, amount);
    }

    /// @inheritdoc IMarket
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = _owed[msg.sender];
        if (amount == 0) revert NothingOwed(msg.sender);
        _owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IMarket
    function pause() external onlyOwner {
        _pause();
    }

    /// @inheritdoc IMarket
    function unpause() external onlyOwner {
        _unpause();
    }

    // ================================================================== views

    /// @inheritdoc IMarket
    function auctionType() public pure virtual returns (uint8);

    /// @inheritdoc IMarket
    function hashIntent(Intent calldata intent) external view returns (bytes32) {
        return _hashTypedDataV4(intent.hash());
    }

    /// @inheritdoc IMarket
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IMarket
    function job(bytes32 jobId) external view returns (Job memory v) {
        JobRecord storage j = _jobs[jobId];
        (v.requester, v.maxPrice) = (j.requester, j.maxPrice);
        (v.state, v.proofMode, v.feeBps, v.callbackGasLimit, v.latency) =
        (j.state, j.proofMode, j.feeBps, j.callbackGasLimit, j.latency);
        (v.awardedAt, v.deliveredAt, v.deadline, v.disputeEnd) =
        (j.awardedAt, j.deliveredAt, j.deadline, j.disputeEnd);
        (v.provider, v.price) = (j.provider, j.price);
        (v.minStake, v.postedAt, v.auctionEnd, v.bondMultiple, v.priceWeightBps, v.allowFailover) =
        (j.minStake, j.postedAt, j.auctionEnd, j.bondMultiple, j.priceWeightBps, j.allowFailover);
        (v.modelId, v.inputCommitment, v.startPrice, v.stakeLocked) =
        (j.modelId, j.inputCommitment, j.startPrice, j.stakeLocked);
        (v.challenger, v.challengeBond, v.outputHash) = (j.challenger, j.challengeBond, j.outputHash);
    }

    /// @inheritdoc IMarket
    function providerDeadline(bytes32 jobId) external view returns (uint256) {
        JobRecord storage j = _jobs[jobId];
        return j.awardedAt == 0 ? 0 : _providerDeadline(j);
    }

    /// @inheritdoc IMarket
    function outputOf(bytes32 jobId) external view returns (uint256[] memory) {
        return _outputs[jobId];
    }

    /// @inheritdoc IMarket
    function nonceBitmap(address owner_, uint256 word) external view returns (uint256) {
        return _nonceBitmap[owner_][word];
    }

    /// @inheritdoc IMarket
    function isNonceUsed(address owner_, uint256 nonce) external view returns (bool) {
        return _nonceBitmap[owner_][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IMarket
    function escrowFor(uint256 maxPrice) external view returns (uint256) {
        // any maxPrice here, so checked (`_fee` assumes < 2**96)
        return maxPrice + maxPrice * _params.feeBps / BPS;
    }

    /// @inheritdoc IMarket
    function params() external view returns (MarketParams memory) {
        return _params;
    }

    /// @inheritdoc IMarket
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IMarket
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IMarket
    function staking() external view returns (address) {
        return address(_staking);
    }

    /// @inheritdoc IMarket
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IMarket
    function owed(address account) external view returns (uint256) {
        return _owed[account];
    }

    /// @inheritdoc IMarket
    function feesOwed() external view returns (uint256) {
        return _feesOwed;
    }

    /// @inheritdoc IMarket
    // solhint-disable-next-line func-name-mixedcase
    function MAX_FEE_BPS() external pure returns (uint16) {
        return _MAX_FEE_BPS;
    }

    // ================================================================== hooks for auction types

    /// @dev Checks the intent's pricing fields for this auction type (reverts `BadStartPrice`).
    function _checkPricing(Intent calldata intent) internal view virtual;

    /// @dev A job was just recorded (before the escrow is pulled): prepare auction-specific storage.
    function _opened(bytes32 jobId) internal virtual;

    /// @dev A delivery arrived for an Open job: award it now or revert.
    function _awardOnDelivery(bytes32 jobId, JobRecord storage j) internal virtual;

    /// @dev Whether an Open job past its auction window may be refunded.
    function _refundable(bytes32 jobId, JobRecord storage j) internal view virtual returns (bool);

    /// @dev After `from` expired: re-award to a runner-up if possible. Returns whether it did.
    function _failover(bytes32 jobId, JobRecord storage j, address from) internal virtual returns (bool);

    // ================================================================== shared steps for auction types

    function _job(bytes32 jobId) internal view returns (JobRecord storage) {
        return _jobs[jobId];
    }

    /// @dev The caller must be `provider` or a solver it authorised in Staking.
    function _requireAuthorized(address provider) internal view {
        if (msg.sender != provider && !_staking.isAuthorized(provider, msg.sender)) {
            revert NotAuthorized(provider, msg.sender);
        }
    }

    /// @dev Stake a bid at `bidPrice` must lock: max(minStake, bidPrice * bondMultiple).
    function _stakeRequired(JobRecord storage j, uint256 bidPrice) internal view returns (uint256 required) {
        uint256 minStake = j.minStake;
        required = bidPrice * j.bondMultiple;
        if (required < minStake) required = minStake;
        if (required > type(uint96).max) revert ValueTooLarge(required, type(uint96).max);
    }

    function _requireStake(address provider, uint256 required) internal view {
        uint256 available = _staking.availableOf(provider);
        if (available < required) revert InsufficientStake(provider, available, required);
    }

    /// @dev Awards if the provider can still lock `required`; otherwise emits `AwardSkipped`.
    function _tryAward(
        bytes32 jobId,
        JobRecord storage j,
        address provider,
        uint256 price,
        uint32 latency,
        uint256 required
    ) internal returns (bool) {
        uint256 available = _staking.availableOf(provider);
        if (available < required) {
            emit AwardSkipped(jobId, provider, available, required);
            return false;
        }
        _award(jobId, j, provider, price, latency, required);
        return true;
    }

    /// @dev Records the award and locks `required` of the provider's stake (checked by the caller).
    function _award(
        bytes32 jobId,
        JobRecord storage j,
        address provider,
        uint256 price,
        uint32 latency,
        uint256 required
    ) internal {
        // price <= maxPrice < 2**96 and required < 2**96 are checked by the callers
        j.state = JobState.Awarded;
        j.awardedAt = uint40(block.timestamp);
        j.latency = latency;
        j.provider = provider;
        j.price = uint96(price);
        j.stakeLocked = uint96(required);
        emit Awarded(jobId, provider, price, latency, required, uint40(_providerDeadline(j)));
        _staking.lock(provider, jobId, required);
    }

    /// @dev auctionEnd <= now < deadline.
    function _requireAwardable(bytes32 jobId, JobRecord storage j) internal view {
        uint40 end = j.auctionEnd;
        if (block.timestamp < end) revert AuctionNotEnded(jobId, end);
        uint40 deadline = j.deadline;
        if (block.timestamp >= deadline) revert DeadlinePassed(jobId, deadline);
    }

    /// @dev Credits the whole escrow back to the requester (the caller sets the terminal state first).
    function _refundEscrow(bytes32 jobId, JobRecord storage j) internal {
        address requester = j.requester;
        uint256 amount = _escrowOf(j);
        emit Refunded(jobId, requester, amount);
        _credit(requester, amount);
    }

    // ================================================================== private

    /// @dev Validates, consumes the nonce, records the job and pulls the escrow.
    function _open(bytes32 jobId, Intent calldata intent) private {
        uint8 expected = auctionType();
        if (intent.auctionType != expected) revert WrongAuctionType(intent.auctionType, expected);
        if (block.timestamp >= intent.expiry) revert IntentExpired(intent.expiry, block.timestamp);
        uint8 modes = _registry.proofModesOf(intent.modelId);
        if (modes == 0) revert UnknownModel(intent.modelId);
        if (intent.proofMode > PROOF_OPTIMISTIC || modes & (1 << intent.proofMode) == 0) {
            revert UnsupportedProofMode(intent.modelId, intent.proofMode);
        }
        uint256 maxPrice = intent.maxPrice;
        if (maxPrice == 0) revert ZeroMaxPrice();
        if (maxPrice > type(uint96).max) revert ValueTooLarge(maxPrice, type(uint96).max);
        if (intent.minStake > type(uint96).max) revert ValueTooLarge(intent.minStake, type(uint96).max);
        _checkPricing(intent);
        uint256 auctionEnd = block.timestamp + intent.auctionWindow;
        if (intent.auctionWindow == 0 || auctionEnd >= intent.deadline || intent.deadline > type(uint40).max)
        {
            revert BadWindow(intent.auctionWindow, intent.deadline, block.timestamp);
        }
        if (intent.priceWeightBps == 0 || intent.priceWeightBps > BPS) {
            revert BadPriceWeight(intent.priceWeightBps);
        }
        MarketParams storage p = _params;
        if (intent.callbackGasLimit > p.maxCallbackGas) {
            revert CallbackGasTooHigh(intent.callbackGasLimit, p.maxCallbackGas);
        }
        _useNonce(intent.requester, intent.nonce);

        uint16 feeBps = p.feeBps;
        JobRecord storage j = _jobs[jobId];
        j.requester = intent.requester;
        j.state = JobState.Open;
        j.proofMode = intent.proofMode;
        j.allowFailover = intent.allowFailover;
        j.priceWeightBps = intent.priceWeightBps;
        j.feeBps = feeBps;
        j.callbackGasLimit = intent.callbackGasLimit;
        // maxPrice and minStake were checked to fit 96 bits, the timestamps 40 bits
        j.maxPrice = uint96(maxPrice);
        j.minStake = uint96(intent.minStake);
        j.postedAt = uint40(block.timestamp);
        j.bondMultiple = p.bondMultiple;
        j.auctionEnd = uint40(auctionEnd);
        j.deadline = uint40(intent.deadline);
        j.modelId = intent.modelId;
        j.inputCommitment = intent.inputCommitment;
        if (intent.startPrice != 0) j.startPrice = uint96(intent.startPrice);
        _layouts[jobId] = _registry.layoutOf(intent.modelId);
        _opened(jobId);

        uint256 escrow = maxPrice + _fee(maxPrice, feeBps);
        emit IntentPosted(
            jobId, intent.requester, intent.modelId, intent, escrow, feeBps, uint40(auctionEnd), msg.sender
        );
        _collect(intent.requester, escrow);
    }

    /// @dev Flips the nonce's bit; reverts if it was already set (used or cancelled).
    function _useNonce(address owner_, uint256 nonce) private {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = _nonceBitmap[owner_][nonce >> 8] ^= bit;
        if (flipped & bit == 0) revert NonceAlreadyUsed(owner_, nonce);
    }

    function _deliverOptimistic(
        bytes32 jobId,
        JobRecord storage j,
        address provider,
        uint256[] calldata output,
        bytes32 outputHash,
        uint16 auditRateBps
    ) private {
        // prevrandao is known a block ahead: an audit can be dodged by timing, not by output; see PROTOCOL.md
        bool audited =
            auditRateBps != 0 && uint256(keccak256(abi.encode(block.prevrandao, jobId))) % BPS < auditRateBps;
        MarketParams storage p = _params;
        uint40 end = uint40(block.timestamp + (audited ? p.proofWindow : p.challengeWindow));
        JobState next = audited ? JobState.ProofRequired : JobState.Delivered;
        // state, deliveredAt and disputeEnd share a slot
        j.state = next;
        j.deliveredAt = uint40(block.timestamp);
        j.disputeEnd = end;
        j.outputHash = outputHash;
        _outputs[jobId] = output;
        emit Delivered(jobId, provider, output, outputHash, next, end);
        if (audited) emit AuditRequired(jobId, provider, end);
    }

    /// @dev Calls `m.verifier.verifyProof(proof, instances)` with the public instances built from the layout:
    /// zeros, the input commitment at `commitmentIndex` (hashed inputs) and the `m.outputLength` output words
    /// at `outputOffset`. A polycommit input is bound before the call: the proof's first 64 bytes (the input
    /// column's KZG commitment, which the verifier checks the proof against) must hash to the commitment.
    /// The output words are read at `src`, in calldata if `fromCalldata`, else in memory. The call data is
    /// written straight past the free memory pointer (nothing is allocated: the proof is copied once). A
    /// false return, a revert or return data that is not one word reads as a rejection.
    function _verify(
        bytes32 jobId,
        ModelLayout memory m,
        uint256 inputCommitment,
        uint256 src,
        bool fromCalldata,
        bytes calldata proof
    ) private {
        address verifier = m.verifier;
        bool polycommit = m.inputBinding == INPUT_POLYCOMMIT;
        {
            bool inputBound = true;
            assembly ("memory-safe") {
                if polycommit {
                    // the proof's first point, hashed in scratch space (a short proof reads zeros: rejected)
                    calldatacopy(0x00, proof.offset, 0x40)
                    inputBound := and(
                        iszero(lt(proof.length, 0x40)),
                        eq(keccak256(0x00, 0x40), inputCommitment)
                    )
                }
            }
            if (!inputBound) revert InputMismatch(jobId);
        }
        uint256 count = m.instanceCount;
        uint256 commitmentAt = m.commitmentIndex;
        uint256 outputAt = m.outputOffset;
        uint256 outputWords = m.outputLength;
        bytes4 selector = IVerifier.verifyProof.selector;
        bool ok;
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, selector)
            let args := add(data, 0x04)
            let padded := and(add(proof.length, 0x1f), not(0x1f))
            // head: the offsets of proof and instances
            mstore(args, 0x40)
            mstore(add(args, 0x20), add(0x60, padded))
            // proof: length, bytes, zero padding
            mstore(add(args, 0x40), proof.length)
            mstore(add(add(args, 0x40), padded), 0)
            calldatacopy(add(args, 0x60), proof.offset, proof.length)
            // instances: length, zeros (copied from past the end of calldata), commitment, output
            let instances := add(add(args, 0x60), padded)
            mstore(instances, count)
            let words := add(instances, 0x20)
            calldatacopy(words, calldatasize(), shl(5, count))
            if iszero(polycommit) { mstore(add(words, shl(5, commitmentAt)), inputCommitment) }
            switch fromCalldata
            case 0 { mcopy(add(words, shl(5, outputAt)), src, shl(5, outputWords)) }
            default { calldatacopy(add(words, shl(5, outputAt)), src, shl(5, outputWords)) }
            let size := sub(add(words, shl(5, count)), data)
            ok := call(gas(), verifier, 0, data, size, 0x00, 0x20)
            ok := and(ok, and(eq(returndatasize(), 0x20), eq(mload(0x00), 1)))
        }
        if (!ok) revert ProofRejected(jobId);
    }

    /// @dev Credits the provider its price (plus `bondToProvider`) and the requester the rest of the escrow,
    /// accrues the fee for the treasury (`withdrawFees`); releases the provider's stake.
    /// The caller has set the state to Settled.
    function _settle(bytes32 jobId, JobRecord storage j, uint256 bondToProvider) private {
        address provider = j.provider;
        uint256 price = j.price;
        uint256 fee = _fee(price, j.feeBps);
        // escrow = maxPrice + fee(maxPrice) >= price + fee(price) since price <= maxPrice
        uint256 refundAmount = _escrowOf(j) - price - fee;
        uint256 latency = j.deliveredAt - j.awardedAt;
        emit Settled(jobId, provider, price, fee, refundAmount, latency);
        delete _layouts[jobId];
        _staking.unlock(provider, jobId);
        // fee <= price < 2**96; checked addition: the total owed would have to pass 2**96 token units
        // between two withdrawals to revert
        _feesOwed += uint96(fee);
        _credit(provider, price + bondToProvider);
        _credit(j.requester, refundAmount);
    }

    /// @dev Calls requester.onTenderResult with exactly callbackGasLimit gas (or reverts if the caller
    /// did not supply enough for that, so a provider cannot starve the consumer). The call's outcome never
    /// blocks settlement; at most CALLBACK_REASON_BYTES of revert data are copied (no return bombs).
    function _callback(bytes32 jobId, JobRecord storage j, uint256[] memory output) private {
        uint256 gasLimit = j.callbackGasLimit;
        address requester = j.requester;
        if (gasLimit == 0 || requester.code.length == 0) return;
        bytes memory data = abi.encodeCall(ITenderConsumer.onTenderResult, (jobId, output));
        // EIP-150 forwards at most 63/64 of what is left
        uint256 needed = gasLimit * 64 / 63 + CALLBACK_RESERVE;
        if (gasleft() < needed) revert InsufficientGasForCallback(gasleft(), needed);
        bool ok;
        bytes memory reason;
        assembly ("memory-safe") {
            ok := call(gasLimit, requester, 0, add(data, 0x20), mload(data), 0, 0)
            if iszero(ok) {
                let n := returndatasize()
                if gt(n, CALLBACK_REASON_BYTES) { n := CALLBACK_REASON_BYTES }
                reason := mload(0x40)
                mstore(reason, n)
                returndatacopy(add(reason, 0x20), 0, n)
                mstore(0x40, add(add(reason, 0x20), CALLBACK_REASON_BYTES))
            }
        }
        if (!ok) emit CallbackFailed(jobId, requester, reason);
    }

    /// @dev Awarded and undelivered past the provider's deadline.
    function _expireDelivery(bytes32 jobId, JobRecord storage j) private {
        uint256 due = _providerDeadline(j);
        if (block.timestamp <= due) revert NotExpired(jobId, due);
        address provider = j.provider;
        uint256 locked = j.stakeLocked;
        // the stake comes here and is credited: a requester that cannot receive tokens cannot block expiry
        _staking.slash(provider, jobId, locked, address(this));
        _credit(j.requester, locked);
        _staking.recordExpiry(provider, jobId);
        emit Expired(jobId, provider, locked);
        if (j.allowFailover && _failover(jobId, j, provider)) return;
        j.state = JobState.Expired;
        _refundEscrow(jobId, j);
    }

    /// @dev Challenged or audited and unproven past the proof deadline.
    function _expireProof(bytes32 jobId, JobRecord storage j) private {
        uint40 end = j.disputeEnd;
        if (block.timestamp <= end) revert NotExpired(jobId, end);
        j.state = JobState.Slashed;
        address provider = j.provider;
        address requester = j.requester;
        address challenger = j.challenger;
        uint256 locked = j.stakeLocked;
        uint256 bond = j.challengeBond;
        uint256 toChallenger = challenger == address(0) ? 0 : locked * _params.challengerRewardBps / BPS;
        uint256 toRequester = locked - toChallenger;
        emit Slashed(jobId, provider, toRequester, toChallenger, bond);
        // one slash of the whole lock to the market, then credits: nobody's transfer can block the expiry
        _staking.slash(provider, jobId, locked, address(this));
        _credit(challenger, toChallenger + bond);
        _credit(requester, toRequester);
        _refundEscrow(jobId, j);
    }

    function _setParams(MarketParams memory p) private {
        if (p.feeBps > _MAX_FEE_BPS) revert FeeTooHigh(p.feeBps, _MAX_FEE_BPS);
        if (
            p.bondMultiple == 0 || p.challengerRewardBps > BPS || p.challengeWindow == 0 || p.proofWindow == 0
                || p.challengeBond == 0
        ) revert BadParams();
        _params = p;
        emit ParamsUpdated(p);
    }

    /// @dev Takes `amount` from what the market owes `from` when that covers it, else pulls all of it from
    /// `from`'s allowance (a balance is never split, so one that is in use stays non-zero and cheap to credit).
    function _collect(address from, uint256 amount) private {
        uint256 balance = _owed[from];
        if (balance >= amount) {
            unchecked {
                _owed[from] = balance - amount;
            }
        } else {
            _pull(from, amount);
        }
    }

    /// @dev Pulls exactly `amount` from `from`; refuses tokens that deliver less (fee-on-transfer).
    function _pull(address from, uint256 amount) private {
        uint256 before = _token.balanceOf(address(this));
        _token.safeTransferFrom(from, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransferToken(amount, received);
    }

    function _credit(address to, uint256 amount) private {
        if (amount != 0) _owed[to] += amount;
    }

    function _escrowOf(JobRecord storage j) private view returns (uint256) {
        uint256 maxPrice = j.maxPrice;
        return maxPrice + _fee(maxPrice, j.feeBps);
    }

    function _fee(uint256 amount, uint256 feeBps) private pure returns (uint256) {
        unchecked {
            // amount < 2**96 (maxPrice or less) and feeBps < 2**16
            return amount * feeBps / BPS;
        }
    }

    /// @dev min(deadline, awardedAt + latency).
    function _providerDeadline(JobRecord storage j) internal view returns (uint256) {
        uint256 due = uint256(j.awardedAt) + j.latency;
        uint256 deadline = j.deadline;
        return due < deadline ? due : deadline;
    }
}
