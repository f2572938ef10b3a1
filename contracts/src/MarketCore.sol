// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IMarketEvents} from "./interfaces/IMarket.sol";
import {IModelRegistry, ModelLayout, INPUT_POLYCOMMIT} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {ITenderConsumer} from "./interfaces/ITenderConsumer.sol";
import {IVerifier} from "./interfaces/IVerifier.sol";
import {DisputeTerms, JobRecord, JobState, MarketParams} from "./MarketStructs.sol";

/// @title MarketCore
/// @notice What a market and its extension share: the market's storage (one ERC-7201 namespace, so that the
/// extension, which runs the cold steps by DELEGATECALL, sees the same layout whatever either inherits),
/// the immutables and the steps both use (credits, settlement, the consumer callback, the audit draw).
abstract contract MarketCore is IMarketEvents, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @custom:storage-location erc7201:tender.market
    struct MarketStorage {
        address treasury;
        /// @dev Fees accrued at settlement, paid to the treasury by `withdrawFees`. Shares the treasury's
        /// slot (never zero), so a settlement adds to it for ~5k gas instead of a ~10k transfer.
        uint96 feesOwed;
        MarketParams params;
        mapping(bytes32 jobId => JobRecord) jobs;
        mapping(bytes32 jobId => uint256[]) outputs;
        /// @dev The model's layout, copied from the registry at the award (models are immutable; a job that is
        /// never awarded never pays for it), so that delivery reads one slot instead of calling the registry;
        /// cleared on settlement (storage refund).
        mapping(bytes32 jobId => ModelLayout) layouts;
        mapping(address owner => mapping(uint256 word => uint256 bits)) nonceBitmap;
        /// @dev What the market owes each account (payments, refunds, returned bonds): paid out by
        /// `withdraw`, spent first by the account's next escrow or bond when it covers it. Crediting a slot
        /// that is already non-zero costs ~5k gas against ~10k for a token transfer, and a recipient that
        /// cannot receive tokens can never block a settlement or an expiry.
        mapping(address account => uint256 amount) owed;
        /// @dev Optimistic jobs' dispute terms, fixed at posting.
        mapping(bytes32 jobId => DisputeTerms) terms;
        /// @dev Providers that declined a job, and when their stake is released (their provider deadline).
        mapping(bytes32 jobId => mapping(address provider => uint40 releaseAt)) declines;
        /// @dev Parameters scheduled by `setParams`, applied by `applyParams` from `pendingAt` on.
        MarketParams pending;
        uint40 pendingAt;
        /// @dev `QuoteMarket` only: one word per job, the state in the low byte and a hash of the job's
        /// terms (after delivery: of the terms and the output hash) above it.
        mapping(bytes32 jobId => uint256 word) quoted;
        /// @dev The registry's proof modes of each model posted here, copied at its first posting (models are
        /// immutable), so that a posting reads one slot instead of calling the registry.
        mapping(bytes32 modelId => uint8 modes) modes;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("tender.market")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant _STORAGE = 0xd608fd70e1ca734ef507578c2db23a5e962e25f6485913d6bff0bc4f33af6a00;

    uint16 internal constant _MAX_FEE_BPS = 500;
    uint256 internal constant BPS = 10_000;
    /// @dev Gas kept back for the code after the consumer callback returns.
    uint256 internal constant CALLBACK_RESERVE = 10_000;
    /// @dev Revert data of a failed callback kept in `CallbackFailed`.
    uint256 internal constant CALLBACK_REASON_BYTES = 128;
    /// @dev How long a `setParams` waits before `applyParams` may apply it.
    uint256 internal constant PARAMS_DELAY = 2 days;

    IERC20 internal immutable _token;
    IModelRegistry internal immutable _registry;
    IStaking internal immutable _staking;

    constructor(IERC20 token_, IModelRegistry registry_, IStaking staking_) {
        _token = token_;
        _registry = registry_;
        _staking = staking_;
    }

    function _s() internal pure returns (MarketStorage storage $) {
        assembly ("memory-safe") {
            $.slot := _STORAGE
        }
    }

    /// @dev The caller must be `provider` or a solver it authorised in Staking.
    function _requireAuthorized(address provider) internal view {
        if (msg.sender != provider && !_staking.isAuthorized(provider, msg.sender)) {
            revert NotAuthorized(provider, msg.sender);
        }
    }

    /// @dev The stake locked for an awarded job, derived rather than stored: every award locks exactly
    /// max(minStake, price * stakeMultiple) of the price it records (`BaseMarket._award`); 0 before an award.
    function _stakeLocked(JobRecord storage j) internal view returns (uint256 locked) {
        if (j.provider == address(0)) return 0;
        locked = uint256(j.price) * j.stakeMultiple;
        uint256 minStake = j.minStake;
        if (locked < minStake) locked = minStake;
    }

    /// @dev Credits the whole escrow back to the requester (the caller sets the terminal state first).
    function _refundEscrow(bytes32 jobId, JobRecord storage j) internal {
        address requester = j.requester;
        uint256 amount = _escrowOf(j);
        emit Refunded(jobId, requester, amount);
        _credit(requester, amount);
    }

    /// @dev Credits the provider its price (plus `bondToProvider`) and the requester the rest of the escrow,
    /// accrues the fee for the treasury (`withdrawFees`); releases the provider's stake.
    /// The caller has set the state to Settled.
    function _settle(bytes32 jobId, JobRecord storage j, uint256 bondToProvider) internal {
        MarketStorage storage $ = _s();
        address provider = j.provider;
        uint256 price = j.price;
        uint256 fee = _fee(price, j.feeBps);
        // escrow = maxPrice + fee(maxPrice) >= price + fee(price) since price <= maxPrice
        uint256 refundAmount = _escrowOf(j) - price - fee;
        uint256 latency = j.deliveredAt - j.awardedAt;
        emit Settled(jobId, provider, price, fee, refundAmount, latency);
        delete $.layouts[jobId];
        // the released amount is the job's stakeLocked (checked by the invariant suite)
        // unlock's return is the job's stakeLocked; no reentrancy: Staking is the immutable, trusted
        // contract set at construction and unlock only updates its own accounting (no call out)
        // slither-disable-next-line unused-return,reentrancy-no-eth
        _staking.unlock(provider, jobId, fee);
        // fee <= price < 2**96; checked addition: the total owed would have to pass 2**96 token units
        // between two withdrawals to revert
        $.feesOwed += uint96(fee);
        _credit(provider, price + bondToProvider);
        _credit(j.requester, refundAmount);
    }

    /// @dev Calls requester.onTenderResult with exactly callbackGasLimit gas (or reverts if the caller
    /// did not supply enough for that, so a provider cannot starve the consumer). The call's outcome never
    /// blocks settlement; at most CALLBACK_REASON_BYTES of revert data are copied (no return bombs).
    function _callback(bytes32 jobId, JobRecord storage j, uint256[] memory output) internal {
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

    /// @dev Draws the audit of a Delivered job once, from blockhash(deliveredBlock + 1): unknown to the
    /// provider when it delivered. A hash that is no longer available (256 blocks on) audits, so letting
    /// it lapse never helps the provider. Audited: -> ProofRequired with the job's proof window.
    function _drawAudit(bytes32 jobId, JobRecord storage j) internal returns (bool audited) {
        MarketStorage storage $ = _s();
        DisputeTerms storage t = $.terms[jobId];
        uint256 rate = $.layouts[jobId].auditRateBps;
        if (rate != 0) {
            uint256 seedBlock = uint256(t.deliveredBlock) + 1;
            if (block.number <= seedBlock) revert AuditNotReady(jobId, seedBlock + 1);
            bytes32 seed = blockhash(seedBlock);
            audited = seed == 0 || uint256(keccak256(abi.encode(seed, jobId))) % BPS < rate;
        }
        t.auditDrawn = true;
        emit AuditDrawn(jobId, audited);
        if (audited) {
            uint40 end = uint40(block.timestamp + t.proofWindow);
            j.state = JobState.ProofRequired;
            j.disputeEnd = end;
            emit AuditRequired(jobId, j.provider, end);
        }
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
    ) internal {
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

    /// @dev Flips the nonce's bit; reverts if it was already set (used or cancelled).
    function _useNonce(address owner_, uint256 nonce) internal {
        MarketStorage storage $ = _s();
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = $.nonceBitmap[owner_][nonce >> 8] ^= bit;
        if (flipped & bit == 0) revert NonceAlreadyUsed(owner_, nonce);
    }

    function _setParams(MarketParams memory p) internal {
        MarketStorage storage $ = _s();
        _checkParams(p);
        bool paused_ = _pausedBit();
        $.params = p;
        _setPausedBit(paused_);
        emit ParamsUpdated(p);
    }

    /// @dev The proof modes of `modelId` (0: not registered), from the copy this market keeps.
    function _modesOf(bytes32 modelId) internal returns (uint8 modes) {
        MarketStorage storage $ = _s();
        modes = $.modes[modelId];
        if (modes == 0) {
            modes = _registry.proofModesOf(modelId);
            if (modes != 0) $.modes[modelId] = modes;
        }
    }

    /// @dev The pause flag: the top bit of the params slot (`MarketParams` fills 240 of its bits), which `post`
    /// and `bid` read anyway, instead of a slot of its own.
    function _pausedBit() internal view returns (bool paused_) {
        MarketStorage storage $ = _s();
        MarketParams storage p = $.params;
        assembly ("memory-safe") {
            paused_ := shr(255, sload(p.slot))
        }
    }

    function _setPausedBit(bool paused_) internal {
        MarketStorage storage $ = _s();
        MarketParams storage p = $.params;
        assembly ("memory-safe") {
            let word := sload(p.slot)
            sstore(p.slot, or(and(word, not(shl(255, 1))), shl(255, paused_)))
        }
    }

    /// @dev A provider caught with a bad output loses (1 - r) * lock >= (1 - r) * stakeMultiple * price, so
    /// (10^4 - r) * stakeMultiple >= 10^4 keeps that at least its price even when it challenges itself.
    function _checkParams(MarketParams memory p) internal pure {
        if (p.feeBps > _MAX_FEE_BPS) revert FeeTooHigh(p.feeBps, _MAX_FEE_BPS);
        if (
            p.stakeMultiple == 0 || p.challengerRewardBps > BPS || p.challengeWindow == 0
                || p.proofWindow == 0 || p.challengeBond == 0
                || (BPS - p.challengerRewardBps) * p.stakeMultiple < BPS
        ) revert BadParams();
    }

    /// @dev Takes `amount` from what the market owes `from` when that covers it, else pulls all of it from
    /// `from`'s allowance (a balance is never split, so one that is in use stays non-zero and cheap to credit).
    function _charge(address from, uint256 amount) internal {
        MarketStorage storage $ = _s();
        uint256 balance = $.owed[from];
        if (balance >= amount) {
            unchecked {
                $.owed[from] = balance - amount;
            }
        } else {
            _pull(from, amount);
        }
    }

    /// @dev Pulls exactly `amount` from `from`; refuses tokens that deliver less (fee-on-transfer).
    function _pull(address from, uint256 amount) internal {
        uint256 before = _token.balanceOf(address(this));
        // `from` is always the caller (`post`, `challenge`) or a requester whose signature over this very
        // intent and escrow was checked (`submitSigned`): nobody can spend another account's allowance
        // slither-disable-next-line arbitrary-send-erc20
        _token.safeTransferFrom(from, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert FeeOnTransferToken(amount, received);
    }

    function _credit(address to, uint256 amount) internal {
        MarketStorage storage $ = _s();
        if (amount != 0) $.owed[to] += amount;
    }

    function _escrowOf(JobRecord storage j) internal view returns (uint256) {
        uint256 maxPrice = j.maxPrice;
        return maxPrice + _fee(maxPrice, j.feeBps);
    }

    function _fee(uint256 amount, uint256 feeBps) internal pure returns (uint256) {
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
