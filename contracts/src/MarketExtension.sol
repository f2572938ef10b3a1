// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {MarketCore} from "./MarketCore.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {IntentLib} from "./libraries/IntentLib.sol";
import {
    AUCTION_DUTCH,
    AUCTION_REVERSE,
    DisputeTerms,
    Intent,
    JobRecord,
    JobState,
    MarketParams,
    MAX_BOOK_PRICE,
    PROOF_OPTIMISTIC
} from "./MarketStructs.sol";

/// @title MarketExtension
/// @notice The cold steps of a market (opening jobs, disputes, audits, admin, payouts), run by the market
/// with DELEGATECALL on the market's own storage (`MarketCore`), so that each market stays under the
/// EIP-170 size limit without linked libraries. Each market deploys its own extension in its constructor;
/// the market checks pause and ownership before forwarding. Called directly, every entry reverts.
contract MarketExtension is MarketCore, EIP712 {
    using SafeERC20 for IERC20;
    using IntentLib for Intent;

    /// @dev The auction type of the market that deployed this extension (checks intents' pricing).
    uint8 private immutable _auctionType;
    address private immutable _self;

    /// @notice The extension was called directly, not by its market.
    error NotDelegated();

    modifier onlyDelegated() {
        if (address(this) == _self) revert NotDelegated();
        _;
    }

    constructor(IERC20 token_, IModelRegistry registry_, IStaking staking_, uint8 auctionType_)
        MarketCore(token_, registry_, staking_)
        EIP712("Tender", "1")
    {
        _auctionType = auctionType_;
        _self = address(this);
    }

    /// @dev See `IMarket.post`.
    function post(Intent calldata intent) external onlyDelegated nonReentrant returns (bytes32 jobId) {
        if (msg.sender != intent.requester) revert NotRequester(msg.sender, intent.requester);
        jobId = _hashTypedDataV4(intent.hash());
        _open(jobId, intent);
    }

    /// @dev See `IMarket.submitSigned`.
    function submitSigned(Intent calldata intent, bytes calldata signature)
        external
        nonReentrant
        returns (bytes32 jobId)
    {
        jobId = _hashTypedDataV4(intent.hash());
        // EOAs: OZ ECDSA refuses high-s and zero-address recovery (returns false here); contracts: ERC-1271
        if (!SignatureChecker.isValidSignatureNow(intent.requester, jobId, signature)) {
            revert InvalidSignature(intent.requester, jobId);
        }
        _open(jobId, intent);
    }

    /// @dev See `IMarket.challenge`.
    function challenge(bytes32 jobId) external onlyDelegated nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        if (j.state != JobState.Delivered) revert InvalidState(jobId, j.state);
        uint40 end = j.disputeEnd;
        if (block.timestamp >= end) revert ChallengeWindowClosed(jobId, end);
        DisputeTerms storage t = $.terms[jobId];
        uint96 bond = t.challengeBond;
        uint40 proofDeadline = uint40(block.timestamp + t.proofWindow);
        j.state = JobState.Challenged;
        j.disputeEnd = proofDeadline;
        j.challenger = msg.sender;
        j.challengeBond = bond;
        emit Challenged(jobId, msg.sender, bond, proofDeadline);
        _charge(msg.sender, bond);
    }

    /// @dev See `IMarket.finalize`.
    function finalize(bytes32 jobId) external onlyDelegated nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        if (j.state != JobState.Delivered) revert InvalidState(jobId, j.state);
        uint40 end = j.disputeEnd;
        if (block.timestamp < end) revert ChallengeWindowOpen(jobId, end);
        // an undrawn audit is drawn first; if it picks the job, the provider must prove instead
        if (!$.terms[jobId].auditDrawn && _drawAudit(jobId, j)) return;
        j.state = JobState.Settled;
        _settle(jobId, j, 0);
        if (j.callbackGasLimit != 0) _callback(jobId, j, $.outputs[jobId]);
    }

    /// @dev See `IMarket.drawAudit`.
    function drawAudit(bytes32 jobId) external onlyDelegated nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        if (j.state != JobState.Delivered) revert InvalidState(jobId, j.state);
        if ($.terms[jobId].auditDrawn) revert AuditAlreadyDrawn(jobId);
        _drawAudit(jobId, j);
    }

    /// @dev See `IMarket.releaseDeclined`.
    function releaseDeclined(bytes32 jobId, address provider) external onlyDelegated nonReentrant {
        MarketStorage storage $ = _s();
        uint40 releaseAt = $.declines[jobId][provider];
        if (releaseAt == 0) revert NotDeclined(jobId, provider);
        if (block.timestamp <= releaseAt) revert NotExpired(jobId, releaseAt);
        delete $.declines[jobId][provider];
        emit DeclineReleased(jobId, provider);
        // a decline earns no reputation: fee 0
        // slither-disable-next-line unused-return
        _staking.unlock(provider, jobId, 0);
    }

    /// @dev See `IMarket.setParams`.
    function setParams(MarketParams calldata params_) external onlyDelegated {
        MarketStorage storage $ = _s();
        _checkParams(params_);
        uint40 effectiveAt = uint40(block.timestamp + PARAMS_DELAY);
        $.pending = params_;
        $.pendingAt = effectiveAt;
        emit ParamsScheduled(params_, effectiveAt);
    }

    /// @dev See `IMarket.applyParams`.
    function applyParams() external onlyDelegated {
        MarketStorage storage $ = _s();
        uint40 effectiveAt = $.pendingAt;
        if (effectiveAt == 0) revert NoPendingParams();
        if (block.timestamp < effectiveAt) revert ParamsNotReady(effectiveAt);
        $.pendingAt = 0;
        _setParams($.pending);
    }

    /// @dev See `IMarket.setTreasury`.
    function setTreasury(address treasury_) external onlyDelegated {
        MarketStorage storage $ = _s();
        if (treasury_ == address(0)) revert ZeroAddress();
        $.treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    /// @dev See `IMarket.withdrawFees`.
    function withdrawFees() external onlyDelegated nonReentrant returns (uint256 amount) {
        MarketStorage storage $ = _s();
        address to = $.treasury;
        amount = $.feesOwed;
        $.feesOwed = 0;
        emit FeesWithdrawn(to, amount);
        if (amount != 0) _token.safeTransfer(to, amount);
    }

    /// @dev See `IMarket.withdraw`.
    function withdraw() external onlyDelegated nonReentrant returns (uint256 amount) {
        MarketStorage storage $ = _s();
        amount = $.owed[msg.sender];
        if (amount == 0) revert NothingOwed(msg.sender);
        $.owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @dev See `IMarket.expire`: the dispute branch (the market runs a missed delivery itself).
    function expire(bytes32 jobId) external onlyDelegated nonReentrant {
        JobRecord storage j = _s().jobs[jobId];
        JobState st = j.state;
        if (st != JobState.Challenged && st != JobState.ProofRequired) revert InvalidState(jobId, st);
        _expireProof(jobId, j);
    }

    /// @dev Validates, consumes the nonce, records the job and pulls the escrow.
    function _open(bytes32 jobId, Intent calldata intent) private {
        MarketStorage storage $ = _s();
        uint8 expected = _auctionType;
        if (intent.auctionType != expected) revert WrongAuctionType(intent.auctionType, expected);
        if (block.timestamp >= intent.expiry) revert IntentExpired(intent.expiry, block.timestamp);
        uint8 modes = _modesOf(intent.modelId);
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
        MarketParams storage p = $.params;
        if (intent.callbackGasLimit > p.maxCallbackGas) {
            revert CallbackGasTooHigh(intent.callbackGasLimit, p.maxCallbackGas);
        }
        _useNonce(intent.requester, intent.nonce);

        uint16 feeBps = p.feeBps;
        uint16 stakeMultiple = p.stakeMultiple;
        // maxPrice and minStake were checked to fit 96 bits, the timestamps 40 bits
        if (_auctionType == AUCTION_REVERSE) {
            // one word: the terms' hash and the state; bids, the award and the refund pass the terms back
            JobRecord storage r = $.jobs[jobId];
            uint256 word = _openWord(intent, feeBps, stakeMultiple, auctionEnd);
            assembly ("memory-safe") {
                // slot 1 of the record, where `state` is the low byte
                sstore(add(r.slot, 1), word)
            }
        } else {
            _record(jobId, intent, feeBps, stakeMultiple, auctionEnd);
        }
        if (intent.proofMode == PROOF_OPTIMISTIC) {
            // the dispute terms in force now are the job's for good
            $.terms[jobId] = DisputeTerms(
                p.challengeBond, p.challengeWindow, p.proofWindow, p.challengerRewardBps, 0, false
            );
        }

        uint256 escrow = maxPrice + _fee(maxPrice, feeBps);
        emit IntentPosted(
            jobId,
            intent.requester,
            intent.modelId,
            intent,
            escrow,
            feeBps,
            stakeMultiple,
            uint40(auctionEnd),
            msg.sender
        );
        _charge(intent.requester, escrow);
    }

    /// @dev A Dutch job's record, written whole at posting (a fill reads it at once).
    function _record(
        bytes32 jobId,
        Intent calldata intent,
        uint16 feeBps,
        uint16 stakeMultiple,
        uint256 auctionEnd
    ) private {
        JobRecord storage j = _s().jobs[jobId];
        j.requester = intent.requester;
        j.proofMode = intent.proofMode;
        j.feeBps = feeBps;
        j.callbackGasLimit = intent.callbackGasLimit;
        j.state = JobState.Open;
        j.deadline = uint40(intent.deadline);
        j.maxPrice = uint96(intent.maxPrice);
        j.minStake = uint96(intent.minStake);
        j.postedAt = uint40(block.timestamp);
        j.auctionEnd = uint40(auctionEnd);
        j.stakeMultiple = stakeMultiple;
        j.priceWeightBps = intent.priceWeightBps;
        j.allowFailover = intent.allowFailover;
        j.modelId = intent.modelId;
        j.inputCommitment = intent.inputCommitment;
        j.startPrice = uint96(intent.startPrice);
    }

    /// @dev A reverse job's Open word: the hash of its terms (`TermsLib`) and the state. The two structs are
    /// ABI-encoded in place (all fields static), as `TermsLib.openWordOf` hashes the calldata terms.
    function _openWord(Intent calldata intent, uint16 feeBps, uint16 stakeMultiple, uint256 auctionEnd)
        private
        view
        returns (uint256 word)
    {
        // checked by `_open`: maxPrice, minStake < 2**96, deadline < 2**40; the rest are typed in the intent
        uint256 ptr;
        assembly ("memory-safe") {
            ptr := mload(0x40)
        }
        bytes32 jobTerms = _hashJobTerms(ptr, intent, feeBps);
        (uint256 maxPrice, uint256 minStake, uint256 deadline, uint16 weight) =
            (intent.maxPrice, intent.minStake, intent.deadline, intent.priceWeightBps);
        assembly ("memory-safe") {
            // AuctionTerms
            mstore(ptr, maxPrice)
            mstore(add(ptr, 0x20), minStake)
            mstore(add(ptr, 0x40), auctionEnd)
            mstore(add(ptr, 0x60), deadline)
            mstore(add(ptr, 0x80), weight)
            mstore(add(ptr, 0xa0), stakeMultiple)
            mstore(add(ptr, 0xc0), jobTerms)
            // the low byte: JobState.Open (1)
            word := or(and(keccak256(ptr, 0xe0), not(0xff)), 1)
        }
    }

    /// @dev keccak256(abi.encode(JobTerms)) of a reverse job posted now, encoded at `ptr` (free memory).
    function _hashJobTerms(uint256 ptr, Intent calldata intent, uint16 feeBps)
        private
        view
        returns (bytes32 h)
    {
        (address requester, bytes32 modelId, uint256 commitment) =
            (intent.requester, intent.modelId, intent.inputCommitment);
        (uint8 proofMode, bool failover, uint32 callbackGas) =
            (intent.proofMode, intent.allowFailover, intent.callbackGasLimit);
        assembly ("memory-safe") {
            mstore(ptr, requester)
            mstore(add(ptr, 0x20), modelId)
            mstore(add(ptr, 0x40), commitment)
            mstore(add(ptr, 0x60), timestamp())
            mstore(add(ptr, 0x80), feeBps)
            mstore(add(ptr, 0xa0), proofMode)
            mstore(add(ptr, 0xc0), failover)
            mstore(add(ptr, 0xe0), callbackGas)
            h := keccak256(ptr, 0x100)
        }
    }

    /// @dev Challenged or audited and unproven past the proof deadline.
    function _expireProof(bytes32 jobId, JobRecord storage j) private {
        MarketStorage storage $ = _s();
        uint40 end = j.disputeEnd;
        if (block.timestamp <= end) revert NotExpired(jobId, end);
        j.state = JobState.Slashed;
        address provider = j.provider;
        address requester = j.requester;
        address challenger = j.challenger;
        uint256 locked = _stakeLocked(j);
        uint256 bond = j.challengeBond;
        uint256 toChallenger =
            challenger == address(0) ? 0 : locked * $.terms[jobId].challengerRewardBps / BPS;
        uint256 toRequester = locked - toChallenger;
        emit Slashed(jobId, provider, toRequester, toChallenger, bond);
        // the shares are credited in Staking and the bond here: no transfer can block the expiry
        if (toChallenger != 0) _staking.slash(provider, jobId, toChallenger, challenger);
        _staking.slash(provider, jobId, toRequester, requester);
        _credit(challenger, bond);
        _refundEscrow(jobId, j);
    }

    /// @dev The intent's pricing fields for the market's auction type: Dutch 0 < startPrice <= maxPrice,
    /// reverse startPrice == 0.
    function _checkPricing(Intent calldata intent) private view {
        bool ok = _auctionType == AUCTION_DUTCH
            ? intent.startPrice != 0 && intent.startPrice <= intent.maxPrice
            : intent.startPrice == 0;
        if (!ok) revert BadStartPrice(intent.startPrice, intent.maxPrice);
        // a reverse bid book side is one word: its price has 80 bits (`MAX_BOOK_PRICE`)
        if (_auctionType == AUCTION_REVERSE && intent.maxPrice > MAX_BOOK_PRICE) {
            revert ValueTooLarge(intent.maxPrice, MAX_BOOK_PRICE);
        }
    }
}
