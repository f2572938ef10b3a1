// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {MarketCore} from "./MarketCore.sol";
import {MarketExtension} from "./MarketExtension.sol";
import {IMarket} from "./interfaces/IMarket.sol";
import {ModelLayout} from "./interfaces/IModelRegistry.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IStaking} from "./interfaces/IStaking.sol";
import {IntentLib} from "./libraries/IntentLib.sol";
import {
    AUCTION_REVERSE,
    DisputeTerms,
    Intent,
    Job,
    JobRecord,
    JobState,
    MarketParams,
    PROOF_ZK
} from "./MarketStructs.sol";

/// @title BaseMarket
/// @notice Everything both auction types share: intent validation, escrow, nonces, award bookkeeping,
/// delivery, verification, settlement, disputes, expiry and refunds. An auction type overrides only how
/// the price and the winner are resolved (`_checkPricing`, `_opened`, `_failover`) and adds its own entries
/// (`bid`/`award`/`refund` or `fill`/`refund`). The hot steps (bid, fill, award, delivery, proof,
/// expiry of a missed delivery) run here; the cold ones (opening a job, challenge, finalize, audit draw,
/// admin, payouts) run in a `MarketExtension` this market deploys and calls with DELEGATECALL on its own
/// storage, which keeps each market under the EIP-170 size limit without linked libraries.
abstract contract BaseMarket is IMarket, MarketCore, EIP712, Ownable2Step, Pausable {
    using IntentLib for Intent;

    /// @dev Runs the cold steps on this contract's storage (see `MarketExtension`).
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
        // slashed stake compensates in payment units only if both are the same token
        address stakingToken = staking_.token();
        if (stakingToken != address(token_)) revert TokenMismatch(stakingToken, address(token_));
        _s().treasury = treasury_;
        emit TreasuryUpdated(treasury_);
        _setParams(params_);
        _extension = address(new MarketExtension(token_, registry_, staking_, auctionType()));
    }

    // ================================================================== entry

    /// @inheritdoc IMarket
    function post(Intent calldata) external whenNotPaused returns (bytes32 jobId) {
        jobId = _delegateWord();
        _opened(jobId);
    }

    /// @inheritdoc IMarket
    function submitSigned(Intent calldata, bytes calldata) external whenNotPaused returns (bytes32 jobId) {
        jobId = _delegateWord();
        _opened(jobId);
    }

    /// @inheritdoc IMarket
    function invalidateNonces(uint256 word, uint256 mask) external {
        MarketStorage storage $ = _s();
        $.nonceBitmap[msg.sender][word] |= mask;
        emit NoncesInvalidated(msg.sender, word, mask);
    }

    /// @inheritdoc IMarket
    function deliver(bytes32 jobId, uint256[] calldata output, bytes calldata proof) external nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        if (j.state != JobState.Awarded) revert InvalidState(jobId, j.state);
        address provider = j.provider;
        _requireAuthorized(provider);
        uint256 due = _providerDeadline(j);
        if (block.timestamp > due) revert DeliveryTooLate(jobId, due, block.timestamp);
        ModelLayout memory m = $.layouts[jobId];
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
            _deliverOptimistic(jobId, j, provider, output, outputHash);
        }
    }

    /// @inheritdoc IMarket
    function challenge(bytes32) external {
        _forward();
    }

    /// @inheritdoc IMarket
    function prove(bytes32 jobId, bytes calldata proof) external nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        JobState s = j.state;
        if (s != JobState.Challenged && s != JobState.ProofRequired) revert InvalidState(jobId, s);
        _requireAuthorized(j.provider);
        uint40 end = j.disputeEnd;
        if (block.timestamp > end) revert ProofDeadlinePassed(jobId, end);
        uint256[] memory output = $.outputs[jobId];
        uint256 src;
        assembly ("memory-safe") {
            src := add(output, 0x20)
        }
        _verify(jobId, $.layouts[jobId], j.inputCommitment, src, false, proof);
        uint256 bond = j.challengeBond;
        j.state = JobState.Settled;
        emit Proved(jobId, msg.sender, bond);
        _settle(jobId, j, bond);
        _callback(jobId, j, output);
    }

    /// @inheritdoc IMarket
    function finalize(bytes32) external {
        _forward();
    }

    /// @inheritdoc IMarket
    function drawAudit(bytes32) external {
        _forward();
    }

    /// @inheritdoc IMarket
    function decline(bytes32 jobId) external nonReentrant {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        if (j.state != JobState.Awarded) revert InvalidState(jobId, j.state);
        address provider = j.provider;
        _requireAuthorized(provider);
        uint256 end = uint256(j.awardedAt) + j.latency / 4;
        if (block.timestamp > end) revert DeclineWindowClosed(jobId, end);
        // the stake stays locked until the provider deadline: declining never frees it sooner than the work
        uint40 releaseAt = uint40(_providerDeadline(j));
        $.declines[jobId][provider] = releaseAt;
        emit Declined(jobId, provider, releaseAt);
        if (j.allowFailover && _failover(jobId, j, provider)) return;
        j.state = JobState.Refunded;
        _refundEscrow(jobId, j);
    }

    /// @inheritdoc IMarket
    function releaseDeclined(bytes32, address) external {
        _forward();
    }

    /// @inheritdoc IMarket
    function expire(bytes32 jobId) external {
        // a missed delivery may fail over (this auction type's hook); disputes are the extension's
        if (_s().jobs[jobId].state != JobState.Awarded) _forward();
        _expireDelivery(jobId);
    }

    // ================================================================== admin

    /// @inheritdoc IMarket
    function setParams(MarketParams calldata) external onlyOwner {
        _forward();
    }

    /// @inheritdoc IMarket
    function applyParams() external {
        _forward();
    }

    /// @inheritdoc IMarket
    function setTreasury(address) external onlyOwner {
        _forward();
    }

    /// @inheritdoc IMarket
    function withdrawFees() external returns (uint256) {
        _forward();
    }

    /// @inheritdoc IMarket
    function withdraw() external returns (uint256) {
        _forward();
    }

    /// @inheritdoc IMarket
    function pause() external onlyOwner {
        _pause();
    }

    /// @inheritdoc IMarket
    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Whether the market is paused (no posting, bidding or filling).
    function paused() public view override returns (bool) {
        return _pausedBit();
    }

    /// @dev Pausable's flag, kept in the params slot (`MarketCore._pausedBit`).
    function _pause() internal override whenNotPaused {
        _setPausedBit(true);
        emit Paused(msg.sender);
    }

    function _unpause() internal override whenPaused {
        _setPausedBit(false);
        emit Unpaused(msg.sender);
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
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        // an Open reverse job stores only its terms' hash beside the state (`IntentPosted` has the terms)
        if (j.state == JobState.Open && auctionType() == AUCTION_REVERSE) {
            v.state = JobState.Open;
            return v;
        }
        (v.requester, v.maxPrice) = (j.requester, j.maxPrice);
        (v.state, v.proofMode, v.feeBps, v.callbackGasLimit) =
        (j.state, j.proofMode, j.feeBps, j.callbackGasLimit);
        v.latency = j.latency;
        (v.awardedAt, v.deliveredAt, v.deadline, v.disputeEnd) =
        (j.awardedAt, j.deliveredAt, j.deadline, j.disputeEnd);
        (v.provider, v.price) = (j.provider, j.price);
        (v.minStake, v.postedAt, v.auctionEnd, v.stakeMultiple, v.priceWeightBps, v.allowFailover) =
        (j.minStake, j.postedAt, j.auctionEnd, j.stakeMultiple, j.priceWeightBps, j.allowFailover);
        (v.modelId, v.inputCommitment, v.startPrice, v.stakeLocked) =
        (j.modelId, j.inputCommitment, j.startPrice, uint96(_stakeLocked(j)));
        (v.challenger, v.challengeBond, v.outputHash) = (j.challenger, j.challengeBond, j.outputHash);
    }

    /// @inheritdoc IMarket
    function providerDeadline(bytes32 jobId) external view returns (uint256) {
        MarketStorage storage $ = _s();
        JobRecord storage j = $.jobs[jobId];
        return j.state == JobState.Open || j.awardedAt == 0 ? 0 : _providerDeadline(j);
    }

    /// @inheritdoc IMarket
    function outputOf(bytes32 jobId) external view returns (uint256[] memory) {
        MarketStorage storage $ = _s();
        return $.outputs[jobId];
    }

    /// @inheritdoc IMarket
    function nonceBitmap(address owner_, uint256 word) external view returns (uint256) {
        MarketStorage storage $ = _s();
        return $.nonceBitmap[owner_][word];
    }

    /// @inheritdoc IMarket
    function isNonceUsed(address owner_, uint256 nonce) external view returns (bool) {
        MarketStorage storage $ = _s();
        return $.nonceBitmap[owner_][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IMarket
    function escrowFor(uint256 maxPrice) external view returns (uint256) {
        MarketStorage storage $ = _s();
        // any maxPrice here, so checked (`_fee` assumes < 2**96)
        return maxPrice + maxPrice * $.params.feeBps / BPS;
    }

    /// @inheritdoc IMarket
    function params() external view returns (MarketParams memory) {
        MarketStorage storage $ = _s();
        return $.params;
    }

    /// @inheritdoc IMarket
    function pendingParams() external view returns (MarketParams memory, uint40) {
        MarketStorage storage $ = _s();
        return ($.pending, $.pendingAt);
    }

    /// @inheritdoc IMarket
    function disputeTerms(bytes32 jobId) external view returns (DisputeTerms memory) {
        MarketStorage storage $ = _s();
        return $.terms[jobId];
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
        MarketStorage storage $ = _s();
        return $.treasury;
    }

    /// @inheritdoc IMarket
    function owed(address account) external view returns (uint256) {
        MarketStorage storage $ = _s();
        return $.owed[account];
    }

    /// @inheritdoc IMarket
    function feesOwed() external view returns (uint256) {
        MarketStorage storage $ = _s();
        return $.feesOwed;
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

    /// @dev After `from` expired: re-award to a runner-up if possible. Returns whether it did.
    function _failover(bytes32 jobId, JobRecord storage j, address from) internal virtual returns (bool);

    // ================================================================== shared steps for auction types

    function _job(bytes32 jobId) internal view returns (JobRecord storage) {
        MarketStorage storage $ = _s();
        return $.jobs[jobId];
    }

    /// @dev Stake a bid at `bidPrice` must lock: max(minStake, bidPrice * stakeMultiple).
    function _stakeRequired(JobRecord storage j, uint256 bidPrice) internal view returns (uint256) {
        return _lockFor(j.minStake, j.stakeMultiple, bidPrice);
    }

    /// @dev max(minStake, price * multiple), at most 2**96 - 1 (else `ValueTooLarge`).
    function _lockFor(uint256 minStake, uint256 multiple, uint256 price)
        internal
        pure
        returns (uint256 required)
    {
        required = price * multiple;
        if (required < minStake) required = minStake;
        if (required > type(uint96).max) revert ValueTooLarge(required, type(uint96).max);
    }

    function _requireStake(address provider, uint256 required) internal view {
        uint256 available = _staking.availableOf(provider);
        if (available < required) revert InsufficientStake(provider, available, required);
    }

    /// @dev Awards a bid of `bidPrice` at `price` (>= bidPrice) if the provider still has its promised
    /// `latency` before the deadline (else `AwardSkippedLate`) and can lock the stake: the price is cut to
    /// what its lockable stake covers (never below its bid), so the lock always covers price * stakeMultiple.
    /// A provider that cannot lock even its bid's stake is skipped (`AwardSkipped`) and, if `penalize`, loses
    /// up to that stake from its free stake to the requester.
    function _tryAward(
        bytes32 jobId,
        JobRecord storage j,
        address provider,
        uint256 bidPrice,
        uint256 price,
        uint32 latency,
        bool penalize
    ) internal returns (bool) {
        uint40 deadline = j.deadline;
        if (block.timestamp + latency > deadline) {
            emit AwardSkippedLate(jobId, provider, latency, deadline);
            return false;
        }
        uint256 lockable = _staking.lockableOf(provider);
        uint256 cap = lockable / j.stakeMultiple;
        if (price > cap) price = cap < bidPrice ? bidPrice : cap;
        uint256 required = _stakeRequired(j, price);
        if (lockable < required) {
            emit AwardSkipped(jobId, provider, lockable, required);
            // what it took is in Staking's StakePenalized event
            // slither-disable-next-line unused-return
            if (penalize) _staking.penalize(provider, jobId, required, j.requester);
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
        // the first award copies the model's layout for delivery (a failover finds it there already)
        if (j.awardedAt == 0) _s().layouts[jobId] = _registry.layoutOf(j.modelId);
        j.state = JobState.Awarded;
        j.awardedAt = uint40(block.timestamp);
        j.latency = latency;
        j.provider = provider;
        j.price = uint96(price);
        // the lock is not stored: `_stakeLocked` derives it from price, minStake and stakeMultiple
        emit Awarded(jobId, provider, price, latency, required, uint40(_providerDeadline(j)));
        _staking.lock(provider, jobId, required, _fee(price, j.feeBps));
    }

    /// @dev auctionEnd <= now < deadline.
    function _requireAwardable(bytes32 jobId, JobRecord storage j) internal view {
        uint40 end = j.auctionEnd;
        if (block.timestamp < end) revert AuctionNotEnded(jobId, end);
        uint40 deadline = j.deadline;
        if (block.timestamp >= deadline) revert DeadlinePassed(jobId, deadline);
    }

    // ================================================================== private

    /// @dev Stores the output and opens the challenge window. The audit is drawn later (`_drawAudit`), from
    /// the hash of a block after this one, which the provider cannot know when it delivers.
    function _deliverOptimistic(
        bytes32 jobId,
        JobRecord storage j,
        address provider,
        uint256[] calldata output,
        bytes32 outputHash
    ) private {
        MarketStorage storage $ = _s();
        DisputeTerms storage t = $.terms[jobId];
        uint40 end = uint40(block.timestamp + t.challengeWindow);
        t.deliveredBlock = uint64(block.number);
        // state and deliveredAt share slot 1; disputeEnd is in slot 0, beside the requester and proof mode
        j.state = JobState.Delivered;
        j.deliveredAt = uint40(block.timestamp);
        j.disputeEnd = end;
        j.outputHash = outputHash;
        $.outputs[jobId] = output;
        emit Delivered(jobId, provider, output, outputHash, JobState.Delivered, end);
    }

    /// @dev Awarded and undelivered past the provider's deadline. The lock is credited to the requester in
    /// Staking (no transfer: a token that blocks Staking or the requester cannot block expiry).
    // Staking is this market's immutable, trusted counterpart and every entry is nonReentrant: the state
    // written after its calls (failover or Expired) cannot be observed half-way.
    // slither-disable-next-line reentrancy-no-eth
    function _expireDelivery(bytes32 jobId) private nonReentrant {
        JobRecord storage j = _s().jobs[jobId];
        uint256 due = _providerDeadline(j);
        if (block.timestamp <= due) revert NotExpired(jobId, due);
        address provider = j.provider;
        uint256 locked = _stakeLocked(j);
        emit Expired(jobId, provider, locked);
        _staking.recordExpiry(provider, jobId);
        _staking.slash(provider, jobId, locked, j.requester);
        if (j.allowFailover && _failover(jobId, j, provider)) return;
        j.state = JobState.Expired;
        _refundEscrow(jobId, j);
    }

    /// @dev Runs the calling entry in the extension on this contract's storage and returns or reverts with its
    /// result (never returns here).
    function _forward() private {
        address ext = _extension;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), ext, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            // intended: the calling entry returns the extension's result as its own (a proxy forward)
            // slither-disable-next-line incorrect-return
            return(0, returndatasize())
        }
    }

    /// @dev Runs the calling entry in the extension and returns the first word of its result (reverts with
    /// its revert data).
    function _delegateWord() private returns (bytes32 word) {
        address ext = _extension;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), ext, ptr, calldatasize(), 0, 0x20)
            if iszero(ok) {
                returndatacopy(ptr, 0, returndatasize())
                revert(ptr, returndatasize())
            }
            word := mload(0)
        }
    }
}
