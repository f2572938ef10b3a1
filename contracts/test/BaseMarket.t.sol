// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {TenderFixture} from "./utils/TenderFixture.sol";
import {IntentBuilder} from "./utils/IntentBuilder.sol";
import {MockVerifier} from "./mocks/MockVerifier.sol";
import {CalldataRecorder} from "./mocks/CalldataRecorder.sol";
import {MockERC1271Wallet} from "./mocks/MockERC1271Wallet.sol";
import {MockConsumer} from "./mocks/MockConsumer.sol";
import {IMarket, IMarketEvents} from "../src/interfaces/IMarket.sol";
import {IStaking} from "../src/interfaces/IStaking.sol";
import {
    IModelRegistry,
    ModelInfo,
    INPUT_POLYCOMMIT,
    MODES_REEXECUTION
} from "../src/interfaces/IModelRegistry.sol";
import {IVerifier} from "../src/interfaces/IVerifier.sol";
import {Vm} from "./utils/Vm.sol";
import {
    Intent,
    Job,
    JobState,
    MarketParams,
    AUCTION_REVERSE,
    AUCTION_DUTCH,
    PROOF_ZK,
    PROOF_OPTIMISTIC
} from "../src/MarketStructs.sol";

/// @notice The suite every auction type must pass. A concrete test supplies the market (factory), its
/// default intent and how a job gets awarded.
abstract contract BaseMarketTest is TenderFixture {
    using IntentBuilder for Intent;

    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    IMarket internal market;

    // ------------------------------------------------------------------ factory (per auction type)

    function _deployMarket(IERC20 token_, MarketParams memory params_) internal virtual returns (IMarket);

    /// @dev A valid intent for this auction type from `requester` on `modelId`.
    function _intent() internal view virtual returns (Intent memory);

    /// @dev Drives an Open job to Awarded with `who` as provider, asking `price` with `latency`.
    function _awardTo(bytes32 jobId, address who, uint96 price, uint32 latency) internal virtual;

    /// @dev Returns the escrow of an Open job that was never awarded (this auction type's `refund`).
    function _refund(bytes32 jobId) internal virtual;

    function setUp() public virtual {
        _deployCore();
        market = _deployMarket(token, _defaultParams());
        vm.prank(owner);
        staking.setMarket(address(market), true);
        _activate(staking, address(market));
        vm.prank(requester);
        token.approve(address(market), type(uint256).max);
        vm.prank(challenger);
        token.approve(address(market), type(uint256).max);
    }

    // ------------------------------------------------------------------ helpers

    /// @dev Schedules `p` and applies it once its delay has passed.
    function _applyParams(MarketParams memory p) internal {
        vm.prank(owner);
        market.setParams(p);
        vm.warp(block.timestamp + 2 days);
        market.applyParams();
    }

    function _post(Intent memory intent) internal returns (bytes32 jobId) {
        vm.prank(intent.requester);
        jobId = market.post(intent);
    }

    function _awarded(Intent memory intent) internal returns (bytes32 jobId) {
        jobId = _post(intent);
        _awardTo(jobId, provider, 5e17, 60);
    }

    function _deliver(bytes32 jobId, Intent memory intent) internal {
        uint256[] memory out = _output();
        vm.prank(provider);
        market.deliver(jobId, out, _proof(intent.inputCommitment, out));
    }

    function _deliverOptimistic(bytes32 jobId) internal {
        vm.prank(provider);
        market.deliver(jobId, _output(), "");
    }

    /// @dev Two blocks on (the seed is the hash of the block after the delivery), draws the audit.
    function _drawAudit(bytes32 jobId) internal {
        vm.roll(block.number + 2);
        market.drawAudit(jobId);
    }

    function _claimAll(address who) internal returns (uint256 amount) {
        if (staking.claimable(who) == 0) return 0;
        vm.prank(who);
        amount = staking.claim();
    }

    function _sign(Intent memory intent, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.hashIntent(intent));
        return abi.encodePacked(r, s, v);
    }

    function _digest(Intent memory intent, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("Tender"), keccak256("1"), chainId, verifyingContract)
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, _structHash(intent)));
    }

    /// @dev Independent of IntentLib: hashStruct written out word by word.
    function _structHash(Intent memory i) internal pure returns (bytes32) {
        bytes32 typeHash = keccak256(
            "Intent(address requester,bytes32 modelId,uint256 inputCommitment,bytes inputLocation,uint256 maxPrice,"
            "uint256 startPrice,uint8 auctionType,uint32 auctionWindow,uint64 deadline,uint8 proofMode,"
            "uint256 minStake,bytes2 region,uint16 priceWeightBps,bool allowFailover,uint32 callbackGasLimit,"
            "uint256 nonce,uint64 expiry)"
        );
        bytes memory a = abi.encode(
            typeHash,
            i.requester,
            i.modelId,
            i.inputCommitment,
            keccak256(i.inputLocation),
            i.maxPrice,
            i.startPrice,
            uint256(i.auctionType),
            uint256(i.auctionWindow)
        );
        bytes memory b = abi.encode(
            uint256(i.deadline),
            uint256(i.proofMode),
            i.minStake,
            bytes32(i.region),
            uint256(i.priceWeightBps),
            i.allowFailover ? uint256(1) : 0,
            uint256(i.callbackGasLimit),
            i.nonce,
            uint256(i.expiry)
        );
        return keccak256(bytes.concat(a, b));
    }

    /// @dev Everything a rejected call must leave unchanged.
    function _fingerprint(bytes32 jobId) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                market.job(jobId),
                token.balanceOf(address(market)),
                token.balanceOf(requester),
                token.balanceOf(provider),
                token.balanceOf(challenger),
                staking.lockedOf(provider),
                staking.stakeOf(provider),
                market.nonceBitmap(requester, 0),
                market.owed(requester),
                market.owed(provider),
                market.owed(challenger),
                market.feesOwed()
            )
        );
    }

    /// @dev `who` withdraws everything the market owes it; returns what it got (0: nothing owed).
    function _withdrawAll(address who) internal returns (uint256 got) {
        if (market.owed(who) == 0) return 0;
        vm.prank(who);
        got = market.withdraw();
    }

    /// @dev The number of events the payment token emitted since `_recordLogs()` (a transfer or an
    /// approval emits one).
    function _tokenEvents() internal returns (uint256 n) {
        Vm.Log[] memory logs = _recordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(token)) ++n;
        }
    }

    /// @dev The number of `StakeSlashed` events Staking emitted since `_recordLogs()`.
    function _stakeSlashedEvents() internal returns (uint256 n) {
        Vm.Log[] memory logs = _recordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(staking) && logs[i].topics[0] == IStaking.StakeSlashed.selector) {
                ++n;
            }
        }
    }

    /// @dev Leaves `who` owed exactly the escrow of an intent with `maxPrice` at the current fee: the
    /// intent (nonce `nonce`, posted with allowance) is refunded after its window without bids.
    function _owedByRefund(address who, uint256 maxPrice, uint256 nonce) internal returns (uint256 owed) {
        Intent memory intent = _intent().withRequester(who).withMaxPrice(maxPrice).withNonce(nonce);
        if (intent.startPrice > maxPrice) intent.startPrice = maxPrice;
        bytes32 jobId = _post(intent);
        vm.warp(_terms(jobId).auctionEnd);
        _refund(jobId);
        owed = market.owed(who);
        assertEq(owed, _escrow(maxPrice));
    }

    function _escrow(uint256 maxPrice) internal view returns (uint256) {
        return maxPrice + maxPrice * market.params().feeBps / 10_000;
    }

    /// @dev The job's record as posted: `job()` of a Dutch job. An Open reverse job stores only the hash of its
    /// terms (its `job()` shows the state alone, checked here): its record comes from its terms (`IntentPosted`).
    function _posted(bytes32 jobId) internal returns (Job memory) {
        if (market.auctionType() != AUCTION_REVERSE) return market.job(jobId);
        Job memory open;
        open.state = JobState.Open;
        assertEq(
            keccak256(abi.encode(market.job(jobId))),
            keccak256(abi.encode(open)),
            "an Open reverse job shows more than its state"
        );
        return _postedJob(jobId);
    }

    function _state(bytes32 jobId) internal view returns (JobState) {
        return market.job(jobId).state;
    }

    function _expectRejectedPost(Intent memory intent, bytes memory err) internal {
        bytes32 jobId = market.hashIntent(intent);
        bytes32 before = _fingerprint(jobId);
        vm.prank(intent.requester);
        vm.expectRevert(err);
        market.post(intent);
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    // ================================================================== post

    function test_post_opensJobAndEscrows() public {
        Intent memory intent = _intent();
        uint256 balance = token.balanceOf(requester);
        bytes32 expectedId = market.hashIntent(intent);
        bytes32 jobId = _post(intent);
        assertEq(jobId, expectedId);
        Job memory j = _posted(jobId);
        assertEq(uint8(j.state), uint8(JobState.Open));
        assertEq(j.requester, requester);
        assertEq(j.modelId, intent.modelId);
        assertEq(j.inputCommitment, intent.inputCommitment);
        assertEq(j.maxPrice, intent.maxPrice);
        assertEq(j.feeBps, 100);
        assertEq(j.postedAt, block.timestamp);
        assertEq(j.auctionEnd, block.timestamp + intent.auctionWindow);
        assertEq(j.deadline, intent.deadline);
        assertEq(token.balanceOf(requester), balance - _escrow(intent.maxPrice));
        assertEq(token.balanceOf(address(market)), _escrow(intent.maxPrice));
        assertTrue(market.isNonceUsed(requester, intent.nonce));
        assertEq(market.escrowFor(intent.maxPrice), _escrow(intent.maxPrice));
    }

    function test_post_emitsIntentPosted() public {
        Intent memory intent = _intent();
        bytes32 jobId = market.hashIntent(intent);
        vm.expectEmit(address(market));
        emit IMarketEvents.IntentPosted(
            jobId,
            requester,
            intent.modelId,
            intent,
            _escrow(intent.maxPrice),
            100,
            2,
            uint40(block.timestamp + intent.auctionWindow),
            requester
        );
        _post(intent);
    }

    function test_post_revertsWhenNotRequester() public {
        Intent memory intent = _intent();
        bytes32 jobId = market.hashIntent(intent);
        bytes32 before = _fingerprint(jobId);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotRequester.selector, stranger, requester));
        market.post(intent);
        assertEq(_fingerprint(jobId), before);
    }

    function test_post_revertsOnWrongAuctionType() public {
        Intent memory intent = _intent();
        uint8 expected = market.auctionType();
        intent.auctionType = expected == AUCTION_REVERSE ? AUCTION_DUTCH : AUCTION_REVERSE;
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.WrongAuctionType.selector, intent.auctionType, expected)
        );
    }

    function test_post_revertsWhenExpired() public {
        Intent memory intent = _intent().withExpiry(uint64(block.timestamp));
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.IntentExpired.selector, intent.expiry, block.timestamp)
        );
    }

    function test_post_acceptsOneSecondBeforeExpiry() public {
        Intent memory intent = _intent().withExpiry(uint64(block.timestamp + 1));
        _post(intent);
    }

    function test_post_revertsOnUnknownModel() public {
        Intent memory intent = _intent().withModel(keccak256("nope"));
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.UnknownModel.selector, intent.modelId)
        );
    }

    function test_post_revertsOnUnsupportedProofMode() public {
        Intent memory intent = _intent().withModel(zkOnlyModelId).withProofMode(PROOF_OPTIMISTIC);
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(
                IMarketEvents.UnsupportedProofMode.selector, zkOnlyModelId, PROOF_OPTIMISTIC
            )
        );
        intent = _intent().withProofMode(2);
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.UnsupportedProofMode.selector, modelId, 2)
        );
        // a token model (the registry's re-execution tier) is not served by an auction market, in either proof mode
        ModelInfo memory tokenModel;
        tokenModel.onnxSha256 = sha256("lm.onnx");
        tokenModel.proofModes = MODES_REEXECUTION;
        tokenModel.batchSize = 1;
        bytes32 tokenModelId = registry.register(tokenModel);
        for (uint8 mode; mode <= PROOF_OPTIMISTIC; ++mode) {
            intent = _intent().withModel(tokenModelId).withProofMode(mode);
            _expectRejectedPost(
                intent,
                abi.encodeWithSelector(IMarketEvents.UnsupportedProofMode.selector, tokenModelId, mode)
            );
        }
    }

    function test_post_revertsOnZeroMaxPrice() public {
        Intent memory intent = _intent().withMaxPrice(0).withStartPrice(0);
        _expectRejectedPost(intent, abi.encodeWithSelector(IMarketEvents.ZeroMaxPrice.selector));
    }

    function test_post_revertsOnMaxPriceAbove96Bits() public {
        uint256 tooBig = uint256(type(uint96).max) + 1;
        Intent memory intent = _intent().withMaxPrice(tooBig);
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.ValueTooLarge.selector, tooBig, uint256(type(uint96).max))
        );
    }

    function test_post_revertsOnMinStakeAbove96Bits() public {
        uint256 tooBig = uint256(type(uint96).max) + 1;
        Intent memory intent = _intent().withMinStake(tooBig);
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.ValueTooLarge.selector, tooBig, uint256(type(uint96).max))
        );
    }

    function test_post_revertsOnZeroWindow() public {
        Intent memory intent = _intent().withWindow(0);
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.BadWindow.selector, 0, intent.deadline, block.timestamp)
        );
    }

    function test_post_revertsWhenWindowReachesDeadline() public {
        Intent memory intent = _intent().withWindow(100).withDeadline(uint64(block.timestamp + 100));
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(IMarketEvents.BadWindow.selector, 100, intent.deadline, block.timestamp)
        );
        // one second of room is enough
        _post(intent.withDeadline(uint64(block.timestamp + 101)));
    }

    function test_post_revertsOnDeadlineBeyond40Bits() public {
        Intent memory intent = _intent().withDeadline(uint64(type(uint40).max) + 1);
        _expectRejectedPost(
            intent,
            abi.encodeWithSelector(
                IMarketEvents.BadWindow.selector, intent.auctionWindow, intent.deadline, block.timestamp
            )
        );
    }

    function test_post_revertsOnBadPriceWeight() public {
        _expectRejectedPost(
            _intent().withPriceWeight(0), abi.encodeWithSelector(IMarketEvents.BadPriceWeight.selector, 0)
        );
        _expectRejectedPost(
            _intent().withPriceWeight(10_001),
            abi.encodeWithSelector(IMarketEvents.BadPriceWeight.selector, 10_001)
        );
    }

    function test_post_revertsOnCallbackGasTooHigh() public {
        Intent memory intent = _intent().withCallbackGas(500_001);
        _expectRejectedPost(
            intent, abi.encodeWithSelector(IMarketEvents.CallbackGasTooHigh.selector, 500_001, 500_000)
        );
    }

    function test_post_revertsOnReusedNonce() public {
        Intent memory intent = _intent();
        _post(intent);
        // same nonce, different content: still refused
        Intent memory again = _intent().withMaxPrice(2e18);
        _expectRejectedPost(
            again, abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, intent.nonce)
        );
    }

    function test_post_revertsWhenPaused() public {
        vm.prank(owner);
        market.pause();
        _expectRejectedPost(_intent(), abi.encodeWithSelector(Pausable.EnforcedPause.selector));
    }

    function test_post_revertsWithoutAllowance() public {
        vm.prank(requester);
        token.approve(address(market), 0);
        Intent memory intent = _intent();
        vm.prank(requester);
        vm.expectRevert();
        market.post(intent);
        assertEq(uint8(_state(market.hashIntent(intent))), uint8(JobState.None));
    }

    function testFuzz_post_escrowIsMaxPricePlusFee(uint96 maxPrice, uint16 feeBps) public {
        maxPrice = uint96(bound(maxPrice, 2, 500e18));
        feeBps = uint16(bound(feeBps, 0, 500));
        MarketParams memory p = _defaultParams();
        p.feeBps = feeBps;
        _applyParams(p);
        Intent memory intent = _intent().withMaxPrice(maxPrice);
        if (intent.startPrice != 0) intent.startPrice = maxPrice / 2;
        uint256 balance = token.balanceOf(requester);
        _post(intent);
        assertEq(
            balance - token.balanceOf(requester), uint256(maxPrice) + uint256(maxPrice) * feeBps / 10_000
        );
    }

    // ================================================================== submitSigned

    function test_submitSigned_acceptsValidSignature() public {
        Intent memory intent = _intent();
        bytes memory sig = _sign(intent, requesterKey);
        vm.prank(stranger);
        bytes32 jobId = market.submitSigned(intent, sig);
        assertEq(uint8(_state(jobId)), uint8(JobState.Open));
        assertEq(token.balanceOf(address(market)), _escrow(intent.maxPrice));
    }

    function test_submitSigned_digestMatchesIndependentEncoding() public view {
        Intent memory intent = _intent().withRegion("eu").withFailover(true).withCallbackGas(1).withNonce(300);
        assertEq(market.hashIntent(intent), _digest(intent, block.chainid, address(market)));
        bytes32 domain = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("Tender"), keccak256("1"), block.chainid, address(market))
        );
        assertEq(market.DOMAIN_SEPARATOR(), domain);
    }

    function _expectRejectedSigned(Intent memory intent, bytes memory sig, bytes memory err) internal {
        bytes32 jobId = market.hashIntent(intent);
        bytes32 before = _fingerprint(jobId);
        vm.prank(stranger);
        vm.expectRevert(err);
        market.submitSigned(intent, sig);
        assertEq(_fingerprint(jobId), before, "state changed");
    }

    function test_submitSigned_revertsOnWrongChainId() public {
        Intent memory intent = _intent();
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(requesterKey, _digest(intent, block.chainid + 1, address(market)));
        _expectRejectedSigned(
            intent,
            abi.encodePacked(r, s, v),
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsAfterChainFork() public {
        Intent memory intent = _intent();
        bytes memory sig = _sign(intent, requesterKey);
        vm.chainId(block.chainid + 7);
        _expectRejectedSigned(
            intent,
            sig,
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsOnWrongContract() public {
        Intent memory intent = _intent();
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(requesterKey, _digest(intent, block.chainid, stranger));
        _expectRejectedSigned(
            intent,
            abi.encodePacked(r, s, v),
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsOnReplay() public {
        Intent memory intent = _intent();
        bytes memory sig = _sign(intent, requesterKey);
        market.submitSigned(intent, sig);
        _expectRejectedSigned(
            intent,
            sig,
            abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, intent.nonce)
        );
    }

    function test_submitSigned_revertsOnCancelledNonce() public {
        Intent memory intent = _intent().withNonce(257);
        bytes memory sig = _sign(intent, requesterKey);
        vm.prank(requester);
        market.invalidateNonces(1, 1 << 1);
        _expectRejectedSigned(
            intent, sig, abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, 257)
        );
    }

    function test_submitSigned_revertsOnHighS() public {
        Intent memory intent = _intent();
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(requesterKey, market.hashIntent(intent));
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        // the malleated signature recovers the same signer with raw ecrecover ...
        assertEq(ecrecover(market.hashIntent(intent), flippedV, r, highS), requester);
        // ... but is refused
        _expectRejectedSigned(
            intent,
            abi.encodePacked(r, highS, flippedV),
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsOnZeroAddressRecovery() public {
        // an intent "from" address(0) with a signature that ecrecovers to address(0)
        Intent memory intent = _intent().withRequester(address(0));
        bytes memory sig = abi.encodePacked(bytes32(uint256(1)), bytes32(uint256(1)), uint8(29));
        _expectRejectedSigned(
            intent,
            sig,
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, address(0), market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsOnSignatureByAnotherKey() public {
        Intent memory intent = _intent();
        (, uint256 otherKey) = makeKey("other");
        _expectRejectedSigned(
            intent,
            _sign(intent, otherKey),
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_revertsOnMalformedSignature() public {
        Intent memory intent = _intent();
        _expectRejectedSigned(
            intent,
            hex"1234",
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, requester, market.hashIntent(intent)
            )
        );
    }

    function test_submitSigned_acceptsERC1271() public {
        (address walletOwner, uint256 walletKey) = makeKey("walletOwner");
        MockERC1271Wallet wallet = new MockERC1271Wallet(walletOwner);
        token.mint(address(wallet), 10e18);
        wallet.approve(token, address(market), type(uint256).max);
        Intent memory intent = _intent().withRequester(address(wallet));
        bytes memory sig = _sign(intent, walletKey);
        bytes32 jobId = market.submitSigned(intent, sig);
        assertEq(_posted(jobId).requester, address(wallet));
        assertEq(token.balanceOf(address(wallet)), 10e18 - _escrow(intent.maxPrice));

        // a signature by anyone else is refused by the wallet
        Intent memory other = _intent().withRequester(address(wallet)).withNonce(1);
        bytes memory wrongSig = _sign(other, requesterKey);
        vm.expectRevert(
            abi.encodeWithSelector(
                IMarketEvents.InvalidSignature.selector, address(wallet), market.hashIntent(other)
            )
        );
        market.submitSigned(other, wrongSig);
    }

    function test_submitSigned_revertsWhenPaused() public {
        Intent memory intent = _intent();
        bytes memory sig = _sign(intent, requesterKey);
        vm.prank(owner);
        market.pause();
        _expectRejectedSigned(intent, sig, abi.encodeWithSelector(Pausable.EnforcedPause.selector));
    }

    // ================================================================== invalidateNonces

    function test_invalidateNonces_setsBitsAndEmits() public {
        vm.expectEmit(address(market));
        emit IMarketEvents.NoncesInvalidated(requester, 3, 0x05);
        vm.prank(requester);
        market.invalidateNonces(3, 0x05);
        assertEq(market.nonceBitmap(requester, 3), 0x05);
        assertTrue(market.isNonceUsed(requester, (3 << 8) | 2));
        assertFalse(market.isNonceUsed(requester, (3 << 8) | 1));
        assertFalse(market.isNonceUsed(stranger, (3 << 8) | 2));
    }

    function testFuzz_invalidateNonces_blocksExactlyTheMaskedNonces(uint256 word, uint256 mask, uint8 bit)
        public
    {
        word = bound(word, 0, type(uint248).max);
        vm.prank(requester);
        market.invalidateNonces(word, mask);
        assertEq(market.isNonceUsed(requester, (word << 8) | bit), mask & (1 << bit) != 0);
    }

    // ================================================================== deliver (zk)

    function test_deliver_zkSettlesAndPays() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        Job memory a = market.job(jobId);
        uint256 price = a.price;
        uint256 fee = price * 100 / 10_000;
        uint256 refundAmount = _escrow(intent.maxPrice) - price - fee;
        uint256 reqBefore = token.balanceOf(requester);
        uint256 provBefore = token.balanceOf(provider);
        vm.warp(block.timestamp + 5);

        vm.expectEmit(address(market));
        emit IMarketEvents.Settled(jobId, provider, price, fee, refundAmount, 5);
        _deliver(jobId, intent);

        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Settled));
        assertEq(j.deliveredAt, block.timestamp);
        // settlement credits, it pushes nothing
        assertEq(market.owed(provider), price);
        assertEq(market.owed(requester), refundAmount);
        assertEq(token.balanceOf(provider), provBefore);
        assertEq(token.balanceOf(requester), reqBefore);
        assertEq(token.balanceOf(treasury), 0);
        assertEq(market.feesOwed(), fee);
        assertEq(token.balanceOf(address(market)), fee + price + refundAmount);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.lockedFor(provider, jobId), 0);
        IStaking.Stats memory st = staking.stats(provider);
        assertEq(st.jobsWon, 1);
        assertEq(st.deliveredInTime, 1);
        assertEq(verifier.calls(), 1);
    }

    function test_deliver_bySolverPaysProvider() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256 price = market.job(jobId).price;
        uint256 before = token.balanceOf(provider);
        uint256[] memory out = _output();
        vm.prank(solver);
        market.deliver(jobId, out, _proof(intent.inputCommitment, out));
        assertEq(market.owed(provider), price);
        assertEq(market.owed(solver), 0);
        assertEq(_withdrawAll(provider), price);
        assertEq(token.balanceOf(provider), before + price);
        assertEq(token.balanceOf(solver), 0);
    }

    function test_deliver_bindsProofToCommitment() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256[] memory out = _output();
        bytes32 before = _fingerprint(jobId);
        // a valid proof for another input
        bytes memory wrong = _proof(intent.inputCommitment + 1, out);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
        market.deliver(jobId, out, wrong);
        // a valid proof for another output
        uint256[] memory other = _output();
        other[1] = 12;
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
        market.deliver(jobId, out, _proof(intent.inputCommitment, other));
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_revertsWhenVerifierRejects() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        MockVerifier.Mode[3] memory modes =
            [MockVerifier.Mode.RejectAll, MockVerifier.Mode.Revert, MockVerifier.Mode.Garbage];
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _fingerprint(jobId);
        for (uint256 i; i < modes.length; ++i) {
            verifier.setMode(modes[i]);
            vm.prank(provider);
            vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
            market.deliver(jobId, out, proof);
        }
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_revertsOnUnknownJob() public {
        bytes32 jobId = keccak256("none");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.None));
        market.deliver(jobId, _output(), "");
    }

    function test_deliver_revertsWhenSettled() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        bytes32 before = _fingerprint(jobId);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Settled));
        market.deliver(jobId, out, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_revertsWhenNotAuthorized() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _fingerprint(jobId);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, provider, stranger));
        market.deliver(jobId, out, proof);
        // another staked provider cannot deliver either
        vm.prank(provider2);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, provider, provider2));
        market.deliver(jobId, out, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_atProviderDeadlineSucceeds() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        vm.warp(market.providerDeadline(jobId));
        _deliver(jobId, intent);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
    }

    function test_deliver_revertsOneSecondLate() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256 due = market.providerDeadline(jobId);
        vm.warp(due + 1);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.DeliveryTooLate.selector, jobId, due, due + 1));
        market.deliver(jobId, out, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_revertsOnOutputLengthMismatch() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256[] memory out = new uint256[](3);
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.OutputLengthMismatch.selector, 3, 2));
        market.deliver(jobId, out, "");
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_buildsInstancesFromLayout() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256[] memory instances = new uint256[](3);
        instances[0] = intent.inputCommitment;
        instances[1] = 7;
        instances[2] = 11;
        assertEq(verifier.lastInstancesHash(), keccak256(abi.encode(instances)));
    }

    /// @dev A model whose instances have zeros around the output and the commitment last, verified by a
    /// recorder: the market's call must be exactly `abi.encodeCall(verifyProof, (proof, instances))`.
    function _recordedModel() internal returns (CalldataRecorder recorder, bytes32 id) {
        recorder = new CalldataRecorder();
        ModelInfo memory info = _modelInfo(3, 0);
        (info.verifier, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) =
        (address(recorder), 5, 1, 2, 6);
        id = registry.register(info);
    }

    function _recordedInstances(uint256 commitment) internal pure returns (uint256[] memory instances) {
        instances = new uint256[](6);
        (instances[1], instances[2], instances[5]) = (7, 11, commitment);
    }

    function test_deliver_callsVerifierWithCanonicalCalldata() public {
        (CalldataRecorder recorder, bytes32 id) = _recordedModel();
        Intent memory intent = _intent().withModel(id);
        bytes32 jobId = _awarded(intent);
        // an odd length: the proof's last word must be zero-padded
        bytes memory proof = abi.encodePacked(keccak256("a"), keccak256("b"), bytes5(0x0102030405));
        vm.prank(provider);
        market.deliver(jobId, _output(), proof);
        bytes memory expected =
            abi.encodeCall(IVerifier.verifyProof, (proof, _recordedInstances(intent.inputCommitment)));
        assertEq(recorder.lastCalldataHash(), keccak256(expected));
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
    }

    function test_prove_callsVerifierWithCanonicalCalldata() public {
        (CalldataRecorder recorder, bytes32 id) = _recordedModel();
        Intent memory intent = _intent().withModel(id).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        _deliverOptimistic(jobId);
        vm.prank(challenger);
        market.challenge(jobId);
        bytes memory proof = hex"01";
        vm.prank(provider);
        market.prove(jobId, proof);
        bytes memory expected =
            abi.encodeCall(IVerifier.verifyProof, (proof, _recordedInstances(intent.inputCommitment)));
        assertEq(recorder.lastCalldataHash(), keccak256(expected));
        assertEq(recorder.calls(), 1);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
    }

    // ================================================================== deliver (optimistic)

    function test_deliver_optimisticStartsChallengeWindow() public {
        Intent memory intent = _intent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        uint256[] memory out = _output();
        vm.expectEmit(address(market));
        emit IMarketEvents.Delivered(
            jobId,
            provider,
            out,
            keccak256(abi.encode(out)),
            JobState.Delivered,
            uint40(block.timestamp + 1800)
        );
        _deliverOptimistic(jobId);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Delivered));
        assertEq(j.disputeEnd, block.timestamp + 1800);
        assertEq(j.outputHash, keccak256(abi.encode(out)));
        assertEq(market.outputOf(jobId).length, 2);
        assertEq(market.outputOf(jobId)[1], 11);
        assertEq(staking.lockedFor(provider, jobId), j.stakeLocked);
        assertEq(verifier.calls(), 0);
    }

    function test_deliver_optimisticWithProofSettlesNow() public {
        Intent memory intent = _intent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
    }

    function test_deliver_optimisticAuditRequiresProof() public {
        Intent memory intent = _intent().withModel(auditedModelId).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        _deliverOptimistic(jobId);
        // the draw waits for the hash of the block after the delivery
        assertEq(uint8(_state(jobId)), uint8(JobState.Delivered));
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.AuditNotReady.selector, jobId, block.number + 1));
        market.drawAudit(jobId);
        vm.roll(block.number + 1);
        vm.expectEmit(address(market));
        emit IMarketEvents.AuditDrawn(jobId, true);
        vm.expectEmit(address(market));
        emit IMarketEvents.AuditRequired(jobId, provider, uint40(block.timestamp + 900));
        vm.prank(stranger);
        market.drawAudit(jobId);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.ProofRequired));
        assertEq(j.disputeEnd, block.timestamp + 900);
    }

    // ================================================================== challenge

    function _delivered() internal returns (bytes32 jobId, Intent memory intent) {
        intent = _intent().withProofMode(PROOF_OPTIMISTIC);
        jobId = _awarded(intent);
        _deliverOptimistic(jobId);
    }

    function test_challenge_takesBondAndStartsProofWindow() public {
        (bytes32 jobId,) = _delivered();
        uint256 before = token.balanceOf(challenger);
        vm.expectEmit(address(market));
        emit IMarketEvents.Challenged(jobId, challenger, 1e17, uint40(block.timestamp + 900));
        vm.prank(challenger);
        market.challenge(jobId);
        Job memory j = market.job(jobId);
        assertEq(uint8(j.state), uint8(JobState.Challenged));
        assertEq(j.challenger, challenger);
        assertEq(j.challengeBond, 1e17);
        assertEq(j.disputeEnd, block.timestamp + 900);
        assertEq(token.balanceOf(challenger), before - 1e17);
    }

    function test_challenge_lastSecondOfWindowSucceeds() public {
        (bytes32 jobId,) = _delivered();
        vm.warp(market.job(jobId).disputeEnd - 1);
        vm.prank(challenger);
        market.challenge(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Challenged));
    }

    function test_challenge_revertsAtWindowEnd() public {
        (bytes32 jobId,) = _delivered();
        uint40 end = market.job(jobId).disputeEnd;
        vm.warp(end);
        bytes32 before = _fingerprint(jobId);
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ChallengeWindowClosed.selector, jobId, end));
        market.challenge(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_challenge_revertsWhenNotDelivered() public {
        Intent memory intent = _intent().withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        bytes32 before = _fingerprint(jobId);
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Awarded));
        market.challenge(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_challenge_revertsTwice() public {
        (bytes32 jobId,) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        bytes32 before = _fingerprint(jobId);
        vm.prank(challenger);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Challenged)
        );
        market.challenge(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== prove

    function test_prove_afterChallengePaysBondToProvider() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        uint256 price = market.job(jobId).price;
        uint256 provBefore = token.balanceOf(provider);
        uint256 chalBefore = token.balanceOf(challenger);
        vm.expectEmit(address(market));
        emit IMarketEvents.Proved(jobId, provider, 1e17);
        vm.prank(provider);
        market.prove(jobId, _proof(intent.inputCommitment, _output()));
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        assertEq(market.owed(provider), price + 1e17);
        assertEq(market.owed(challenger), 0, "the bond is lost");
        assertEq(_withdrawAll(provider), price + 1e17);
        assertEq(token.balanceOf(provider), provBefore + price + 1e17);
        assertEq(token.balanceOf(challenger), chalBefore);
        _withdrawAll(requester);
        assertEq(token.balanceOf(address(market)), market.feesOwed());
    }

    function test_prove_afterAuditSettles() public {
        Intent memory intent = _intent().withModel(auditedModelId).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        _deliverOptimistic(jobId);
        _drawAudit(jobId);
        vm.warp(market.job(jobId).disputeEnd);
        vm.prank(solver);
        market.prove(jobId, _proof(intent.inputCommitment, _output()));
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
    }

    function test_prove_revertsAfterProofDeadline() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        uint40 end = market.job(jobId).disputeEnd;
        vm.warp(end + 1);
        bytes memory proof = _proof(intent.inputCommitment, _output());
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofDeadlinePassed.selector, jobId, end));
        market.prove(jobId, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_prove_revertsOnBadProof() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        uint256[] memory other = _output();
        other[0] = 8;
        bytes memory proof = _proof(intent.inputCommitment, other);
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
        market.prove(jobId, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_prove_revertsWhenNotAuthorized() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        bytes memory proof = _proof(intent.inputCommitment, _output());
        bytes32 before = _fingerprint(jobId);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotAuthorized.selector, provider, stranger));
        market.prove(jobId, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_prove_revertsWhenUnchallenged() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        bytes memory proof = _proof(intent.inputCommitment, _output());
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Delivered)
        );
        market.prove(jobId, proof);
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== finalize

    function test_finalize_settlesAfterWindow() public {
        (bytes32 jobId,) = _delivered();
        uint256 price = market.job(jobId).price;
        uint256 before = token.balanceOf(provider);
        vm.warp(market.job(jobId).disputeEnd);
        vm.prank(stranger);
        market.finalize(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        assertEq(market.owed(provider), price);
        assertEq(_withdrawAll(provider), price);
        assertEq(token.balanceOf(provider), before + price);
        _withdrawAll(requester);
        assertEq(token.balanceOf(address(market)), market.feesOwed());
        assertEq(staking.lockedOf(provider), 0);
    }

    function test_finalize_revertsDuringWindow() public {
        (bytes32 jobId,) = _delivered();
        uint40 end = market.job(jobId).disputeEnd;
        vm.warp(end - 1);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ChallengeWindowOpen.selector, jobId, end));
        market.finalize(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_finalize_revertsWhenChallenged() public {
        (bytes32 jobId,) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        vm.warp(block.timestamp + 10_000);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Challenged)
        );
        market.finalize(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== expire

    function test_expire_slashesToRequesterAndRefunds() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        Job memory a = market.job(jobId);
        uint256 escrow = _escrow(intent.maxPrice);
        uint256 reqBefore = token.balanceOf(requester);
        uint256 marketBefore = token.balanceOf(address(market));
        vm.warp(market.providerDeadline(jobId) + 1);
        // the stake is credited to the requester in Staking, the escrow in the market
        vm.expectEmit(address(market));
        emit IMarketEvents.Expired(jobId, provider, a.stakeLocked);
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, a.stakeLocked);
        vm.expectEmit(address(market));
        emit IMarketEvents.Refunded(jobId, requester, escrow);
        vm.prank(stranger);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Expired));
        // nothing is pushed: the requester is owed the escrow and can claim the slashed stake
        assertEq(token.balanceOf(requester), reqBefore);
        assertEq(market.owed(requester), escrow);
        assertEq(staking.claimable(requester), a.stakeLocked);
        assertEq(staking.stakeOf(provider), STAKE - a.stakeLocked);
        assertEq(staking.lockedOf(provider), 0);
        assertEq(token.balanceOf(address(market)), marketBefore);
        assertEq(token.balanceOf(address(market)), market.feesOwed() + escrow);
        assertEq(_withdrawAll(requester), escrow);
        vm.prank(requester);
        assertEq(staking.claim(), a.stakeLocked);
        assertEq(token.balanceOf(requester), reqBefore + escrow + a.stakeLocked);
        assertEq(market.owed(requester), 0);
        assertEq(token.balanceOf(address(market)), market.feesOwed());
        IStaking.Stats memory st = staking.stats(provider);
        assertEq(st.expired, 1);
        assertEq(st.slashed, 1);
    }

    function test_expire_revertsAtProviderDeadline() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        uint256 due = market.providerDeadline(jobId);
        vm.warp(due);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, due));
        market.expire(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_expire_revertsWhenOpen() public {
        bytes32 jobId = _post(_intent());
        vm.warp(block.timestamp + 10_000);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Open));
        market.expire(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_expire_unprovenChallengeSlashes() public {
        (bytes32 jobId, Intent memory intent) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        Job memory j = market.job(jobId);
        uint256 toChallenger = uint256(j.stakeLocked) * 2000 / 10_000;
        uint256 toRequester = j.stakeLocked - toChallenger;
        uint256 escrow = _escrow(intent.maxPrice);
        uint256 reqBefore = token.balanceOf(requester);
        uint256 chalBefore = token.balanceOf(challenger);
        uint256 marketBefore = token.balanceOf(address(market));
        vm.warp(j.disputeEnd + 1);
        vm.expectEmit(address(market));
        emit IMarketEvents.Slashed(jobId, provider, toRequester, toChallenger, 1e17);
        // the lock is slashed in two shares, credited in Staking
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, challenger, toChallenger);
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, toRequester);
        vm.expectEmit(address(market));
        emit IMarketEvents.Refunded(jobId, requester, escrow);
        _recordLogs();
        market.expire(jobId);
        assertEq(_stakeSlashedEvents(), 2, "two shares");
        assertEq(uint8(_state(jobId)), uint8(JobState.Slashed));
        // nothing is pushed: the escrow and the bond are credited here, the shares in Staking
        assertEq(token.balanceOf(requester), reqBefore);
        assertEq(token.balanceOf(challenger), chalBefore);
        assertEq(token.balanceOf(address(market)), marketBefore);
        assertEq(market.owed(requester), escrow);
        assertEq(market.owed(challenger), 1e17);
        assertEq(staking.claimable(requester), toRequester);
        assertEq(staking.claimable(challenger), toChallenger);
        assertEq(_withdrawAll(requester) + _claimAll(requester), escrow + toRequester);
        assertEq(_withdrawAll(challenger) + _claimAll(challenger), 1e17 + toChallenger);
        assertEq(token.balanceOf(requester), reqBefore + escrow + toRequester);
        assertEq(token.balanceOf(challenger), chalBefore + 1e17 + toChallenger);
        assertEq(token.balanceOf(address(market)), market.feesOwed());
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.stakeOf(provider), STAKE - j.stakeLocked);
        assertEq(staking.stats(provider).slashed, 1);
    }

    function test_expire_unprovenAuditSlashesToRequester() public {
        Intent memory intent = _intent().withModel(auditedModelId).withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = _awarded(intent);
        _deliverOptimistic(jobId);
        _drawAudit(jobId);
        Job memory j = market.job(jobId);
        uint256 reqBefore = token.balanceOf(requester);
        uint256 marketBefore = token.balanceOf(address(market));
        vm.warp(j.disputeEnd);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NotExpired.selector, jobId, j.disputeEnd));
        market.expire(jobId);
        vm.warp(j.disputeEnd + 1);
        vm.expectEmit(address(market));
        emit IMarketEvents.Slashed(jobId, provider, j.stakeLocked, 0, 0);
        vm.expectEmit(address(staking));
        emit IStaking.StakeSlashed(provider, jobId, requester, j.stakeLocked);
        market.expire(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Slashed));
        // without a challenger the whole lock is credited to the requester
        assertEq(token.balanceOf(requester), reqBefore);
        assertEq(token.balanceOf(address(market)), marketBefore);
        assertEq(market.owed(requester), _escrow(intent.maxPrice));
        assertEq(staking.claimable(requester), j.stakeLocked);
        assertEq(market.owed(address(0)), 0, "no challenger, nothing credited to it");
        assertEq(staking.lockedOf(provider), 0);
        assertEq(staking.stakeOf(provider), STAKE - j.stakeLocked);
    }

    // ------------------------------------------------------------------ expire gas (named for the snapshot)

    function test_gas_expireDelivery() public {
        bytes32 jobId = _awarded(_intent());
        vm.warp(market.providerDeadline(jobId) + 1);
        market.expire(jobId);
    }

    function test_gas_expireProofChallenged() public {
        (bytes32 jobId,) = _delivered();
        vm.prank(challenger);
        market.challenge(jobId);
        vm.warp(market.job(jobId).disputeEnd + 1);
        market.expire(jobId);
    }

    function test_gas_expireProofAudit() public {
        bytes32 jobId = _awarded(_intent().withModel(auditedModelId).withProofMode(PROOF_OPTIMISTIC));
        _deliverOptimistic(jobId);
        _drawAudit(jobId);
        vm.warp(market.job(jobId).disputeEnd + 1);
        market.expire(jobId);
    }

    // ================================================================== refund

    function test_refund_revertsBeforeWindowEnd() public {
        bytes32 jobId = _post(_intent());
        uint40 end = _terms(jobId).auctionEnd;
        vm.warp(end - 1);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.AuctionNotEnded.selector, jobId, end));
        _refund(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    function test_refund_returnsEscrowWithoutAward() public {
        Intent memory intent = _intent();
        uint256 before = token.balanceOf(requester);
        bytes32 jobId = _post(intent);
        vm.warp(_terms(jobId).auctionEnd);
        vm.expectEmit(address(market));
        emit IMarketEvents.Refunded(jobId, requester, _escrow(intent.maxPrice));
        vm.prank(stranger);
        _refund(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Refunded));
        assertEq(market.owed(requester), _escrow(intent.maxPrice));
        assertEq(token.balanceOf(requester), before - _escrow(intent.maxPrice));
        assertEq(_withdrawAll(requester), _escrow(intent.maxPrice));
        assertEq(token.balanceOf(requester), before);
    }

    function test_refund_revertsWhenAwarded() public {
        bytes32 jobId = _awarded(_intent());
        vm.warp(block.timestamp + 10_000);
        bytes32 before = _fingerprint(jobId);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InvalidState.selector, jobId, JobState.Awarded));
        _refund(jobId);
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== callbacks

    function _consumerJob(MockConsumer.Behaviour b, uint32 gasLimit)
        internal
        returns (MockConsumer consumer, bytes32 jobId, Intent memory intent)
    {
        consumer = new MockConsumer();
        consumer.setBehaviour(b);
        token.mint(address(consumer), 10e18);
        intent = _intent().withRequester(address(consumer)).withCallbackGas(gasLimit);
        jobId = consumer.post(market, token, intent);
        _awardTo(jobId, provider, 5e17, 60);
    }

    function test_deliver_callsConsumerBack() public {
        (MockConsumer consumer, bytes32 jobId, Intent memory intent) =
            _consumerJob(MockConsumer.Behaviour.Record, 200_000);
        _deliver(jobId, intent);
        assertEq(consumer.calls(), 1);
        assertEq(consumer.lastJobId(), jobId);
        assertEq(consumer.lastOutput(1), 11);
    }

    function test_finalize_callsConsumerBack() public {
        MockConsumer consumer = new MockConsumer();
        token.mint(address(consumer), 10e18);
        Intent memory intent = _intent().withRequester(address(consumer)).withCallbackGas(200_000)
            .withProofMode(PROOF_OPTIMISTIC);
        bytes32 jobId = consumer.post(market, token, intent);
        _awardTo(jobId, provider, 5e17, 60);
        _deliverOptimistic(jobId);
        vm.warp(market.job(jobId).disputeEnd);
        market.finalize(jobId);
        assertEq(consumer.calls(), 1);
        assertEq(consumer.outputLength(), 2);
    }

    function test_deliver_failingCallbackDoesNotBlockPayment() public {
        MockConsumer.Behaviour[4] memory behaviours = [
            MockConsumer.Behaviour.Revert,
            MockConsumer.Behaviour.BurnGas,
            MockConsumer.Behaviour.ReturnBomb,
            MockConsumer.Behaviour.Reenter
        ];
        for (uint256 i; i < behaviours.length; ++i) {
            (MockConsumer consumer, bytes32 jobId, Intent memory intent) =
                _consumerJob(behaviours[i], 200_000);
            uint256 before = market.owed(provider);
            uint256 price = market.job(jobId).price;
            uint256[] memory out = _output();
            bytes memory proof = _proof(intent.inputCommitment, out);
            vm.prank(provider);
            market.deliver{gas: 1_000_000}(jobId, out, proof);
            assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
            assertEq(market.owed(provider), before + price);
            if (behaviours[i] == MockConsumer.Behaviour.Reenter) {
                assertTrue(consumer.reentryFailed(), "reentry should fail");
            } else {
                assertEq(consumer.calls(), 0);
            }
        }
    }

    function test_deliver_revertsWithTooLittleGasForCallback() public {
        (, bytes32 jobId, Intent memory intent) = _consumerJob(MockConsumer.Behaviour.BurnGas, 400_000);
        uint256[] memory out = _output();
        bytes memory proof = _proof(intent.inputCommitment, out);
        bytes32 before = _fingerprint(jobId);
        vm.prank(provider);
        (bool ok, bytes memory err) =
            address(market).call{gas: 300_000}(abi.encodeCall(IMarket.deliver, (jobId, out, proof)));
        assertFalse(ok);
        // the gas left at the check is not predictable: the selector is
        assertEq(bytes4(err), IMarketEvents.InsufficientGasForCallback.selector);
        assertEq(uint8(_state(jobId)), uint8(JobState.Awarded));
        assertEq(_fingerprint(jobId), before);
    }

    // ================================================================== admin

    function test_setParams_schedulesThenApplyParamsUpdatesAndEmits() public {
        MarketParams memory p = _defaultParams();
        p.feeBps = 500;
        p.challengeBond = 5e18;
        uint40 effectiveAt = uint40(block.timestamp + 2 days);
        vm.expectEmit(address(market));
        emit IMarketEvents.ParamsScheduled(p, effectiveAt);
        vm.prank(owner);
        market.setParams(p);
        // nothing changes before the delay, and applying early reverts
        assertEq(market.params().feeBps, 100);
        (MarketParams memory pending, uint40 at) = market.pendingParams();
        assertEq(pending.feeBps, 500);
        assertEq(at, effectiveAt);
        vm.warp(effectiveAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ParamsNotReady.selector, effectiveAt));
        market.applyParams();
        vm.warp(effectiveAt);
        vm.expectEmit(address(market));
        emit IMarketEvents.ParamsUpdated(p);
        vm.prank(stranger);
        market.applyParams();
        assertEq(market.params().feeBps, 500);
        assertEq(market.params().challengeBond, 5e18);
        vm.expectRevert(IMarketEvents.NoPendingParams.selector);
        market.applyParams();
    }

    function test_setParams_revertsOnFeeAboveCap() public {
        MarketParams memory p = _defaultParams();
        p.feeBps = 501;
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.FeeTooHigh.selector, 501, 500));
        market.setParams(p);
        assertEq(market.params().feeBps, 100);
    }

    function test_setParams_revertsOnBadParams() public {
        MarketParams[6] memory bad;
        for (uint256 i; i < 6; ++i) {
            bad[i] = _defaultParams();
        }
        bad[0].stakeMultiple = 0;
        bad[1].challengerRewardBps = 10_001;
        bad[2].challengeWindow = 0;
        bad[3].proofWindow = 0;
        bad[4].challengeBond = 0;
        // a self-challenging provider would get back more than (1 - 1/multiple) of its lock
        bad[5].stakeMultiple = 1;
        bad[5].challengerRewardBps = 1;
        for (uint256 i; i < 6; ++i) {
            vm.prank(owner);
            vm.expectRevert(abi.encodeWithSelector(IMarketEvents.BadParams.selector));
            market.setParams(bad[i]);
        }
        assertEq(market.params().stakeMultiple, 2);
    }

    function test_setParams_revertsWhenNotOwner() public {
        MarketParams memory p = _defaultParams();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        market.setParams(p);
    }

    function test_setParams_feeChangeDoesNotTouchOpenJobs() public {
        MarketParams memory p = _defaultParams();
        p.feeBps = 500;
        vm.prank(owner);
        market.setParams(p);
        (, uint40 effectiveAt) = market.pendingParams();
        vm.warp(effectiveAt - 1);
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        if (block.timestamp < effectiveAt) vm.warp(effectiveAt);
        market.applyParams();
        _deliver(jobId, intent);
        market.withdrawFees();
        // the job keeps the fee it was posted with: the escrow splits exactly at 1%
        assertEq(token.balanceOf(treasury), uint256(market.job(jobId).price) * 100 / 10_000);
        assertEq(token.balanceOf(address(market)), market.owed(provider) + market.owed(requester));
        _withdrawAll(provider);
        _withdrawAll(requester);
        assertEq(token.balanceOf(address(market)), 0);
    }

    function test_setTreasury_updates() public {
        vm.prank(owner);
        market.setTreasury(stranger);
        assertEq(market.treasury(), stranger);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ZeroAddress.selector));
        market.setTreasury(address(0));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        market.setTreasury(stranger);
        assertEq(market.treasury(), stranger);
    }

    function test_pause_stopsEntryButNotDelivery() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        vm.prank(owner);
        market.pause();
        _deliver(jobId, intent);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        vm.prank(owner);
        market.unpause();
        _post(_intent().withNonce(1));
    }

    function test_pause_revertsWhenNotOwner() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        market.pause();
        vm.prank(owner);
        market.pause();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        market.unpause();
    }

    function test_constructor_revertsOnZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ZeroAddress.selector));
        _deployMarket(IERC20(address(0)), _defaultParams());
    }

    function test_withdrawFees_paysTreasuryAndResets() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256 fee = uint256(market.job(jobId).price) * 100 / 10_000;
        assertGt(fee, 0);
        assertEq(market.feesOwed(), fee);
        vm.expectEmit(address(market));
        emit IMarketEvents.FeesWithdrawn(treasury, fee);
        vm.prank(stranger);
        assertEq(market.withdrawFees(), fee);
        assertEq(token.balanceOf(treasury), fee);
        assertEq(market.feesOwed(), 0);
        // what is left is owed to the provider and the requester, not to the treasury
        assertEq(token.balanceOf(address(market)), market.owed(provider) + market.owed(requester));
        // nothing owed: a no-op that still reports 0
        assertEq(market.withdrawFees(), 0);
        assertEq(token.balanceOf(treasury), fee);
    }

    function test_withdrawFees_goesToTheCurrentTreasury() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256 fee = market.feesOwed();
        vm.prank(owner);
        market.setTreasury(stranger);
        uint256 before = token.balanceOf(stranger);
        market.withdrawFees();
        assertEq(token.balanceOf(stranger), before + fee);
        assertEq(token.balanceOf(treasury), 0);
    }

    function test_views_reportWiring() public view {
        assertEq(market.token(), address(token));
        assertEq(market.registry(), address(registry));
        assertEq(market.staking(), address(staking));
        assertEq(market.treasury(), treasury);
        assertEq(market.MAX_FEE_BPS(), 500);
        assertEq(market.providerDeadline(keccak256("none")), 0);
    }

    // ================================================================== withdraw

    function test_withdraw_paysExactlyOwedAndZeroes() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256 price = market.job(jobId).price;
        uint256 refundAmount = market.owed(requester);
        uint256 provBefore = token.balanceOf(provider);
        uint256 marketBefore = token.balanceOf(address(market));
        assertEq(market.owed(provider), price);
        vm.expectEmit(address(market));
        emit IMarketEvents.Withdrawn(provider, price);
        vm.prank(provider);
        assertEq(market.withdraw(), price);
        assertEq(market.owed(provider), 0);
        assertEq(token.balanceOf(provider), provBefore + price);
        assertEq(token.balanceOf(address(market)), marketBefore - price);
        // another account's balance is untouched
        assertEq(market.owed(requester), refundAmount);
    }

    function test_withdraw_paysEveryCreditTogether() public {
        // a refund credit plus a settlement refund, withdrawn in one call
        uint256 owed = _owedByRefund(requester, 2e18, 7);
        Intent memory intent = _intent().withMaxPrice(3e18);
        if (intent.startPrice != 0) intent.startPrice = 5e17;
        bytes32 jobId = _awarded(intent); // 3.03e18 > owed: pulled from the allowance
        assertEq(market.owed(requester), owed);
        _deliver(jobId, intent);
        uint256 price = market.job(jobId).price;
        uint256 total = owed + _escrow(3e18) - price - price * 100 / 10_000;
        assertEq(market.owed(requester), total);
        uint256 before = token.balanceOf(requester);
        vm.prank(requester);
        assertEq(market.withdraw(), total);
        assertEq(token.balanceOf(requester), before + total);
        assertEq(market.owed(requester), 0);
    }

    function test_withdraw_revertsWhenNothingOwed() public {
        bytes32 jobId = _post(_intent());
        bytes32 before = _fingerprint(jobId);
        uint256 strangerBefore = token.balanceOf(stranger);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, stranger));
        market.withdraw();
        // an open job's escrow is not owed to its requester
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, requester));
        market.withdraw();
        assertEq(_fingerprint(jobId), before);
        assertEq(token.balanceOf(stranger), strangerBefore);
    }

    function test_withdraw_paysOnlyOnce() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256 price = market.job(jobId).price;
        uint256 before = token.balanceOf(provider);
        vm.prank(provider);
        market.withdraw();
        bytes32 fp = _fingerprint(jobId);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.NothingOwed.selector, provider));
        market.withdraw();
        assertEq(_fingerprint(jobId), fp);
        assertEq(token.balanceOf(provider), before + price);
    }

    function test_withdraw_worksWhilePaused() public {
        Intent memory intent = _intent();
        bytes32 jobId = _awarded(intent);
        _deliver(jobId, intent);
        uint256 price = market.job(jobId).price;
        vm.prank(owner);
        market.pause();
        uint256 before = token.balanceOf(provider);
        vm.prank(provider);
        assertEq(market.withdraw(), price);
        assertEq(token.balanceOf(provider), before + price);
        assertEq(market.owed(provider), 0);
    }

    // ================================================================== escrow from credit

    function test_post_takesEscrowFromOwedWhenItCovers() public {
        // owed exactly the escrow of the next intent: the boundary is inclusive
        uint256 owed = _owedByRefund(requester, 1e18, 7);
        uint256 balance = token.balanceOf(requester);
        uint256 marketBalance = token.balanceOf(address(market));
        vm.prank(requester);
        token.approve(address(market), 5e18);
        Intent memory intent = _intent();
        _recordLogs();
        bytes32 jobId = _post(intent);
        assertEq(_tokenEvents(), 0, "a token moved");
        assertEq(uint8(_state(jobId)), uint8(JobState.Open));
        assertEq(market.owed(requester), owed - _escrow(intent.maxPrice));
        assertEq(market.owed(requester), 0);
        assertEq(token.balanceOf(requester), balance);
        assertEq(token.allowance(requester, address(market)), 5e18);
        assertEq(token.balanceOf(address(market)), marketBalance);
    }

    function test_post_takesPartOfALargerOwed() public {
        uint256 owed = _owedByRefund(requester, 3e18, 7);
        uint256 balance = token.balanceOf(requester);
        Intent memory intent = _intent();
        _recordLogs();
        _post(intent);
        assertEq(_tokenEvents(), 0, "a token moved");
        assertEq(market.owed(requester), owed - _escrow(intent.maxPrice));
        assertEq(token.balanceOf(requester), balance);
    }

    function test_post_pullsWholeEscrowWhenOwedFallsShort() public {
        uint256 owed = _owedByRefund(requester, 5e17, 7);
        Intent memory intent = _intent();
        uint256 escrow = _escrow(intent.maxPrice);
        assertLt(owed, escrow);
        vm.prank(requester);
        token.approve(address(market), 5e18);
        uint256 balance = token.balanceOf(requester);
        uint256 marketBalance = token.balanceOf(address(market));
        _post(intent);
        // never split: all of it from the allowance, the credit untouched
        assertEq(market.owed(requester), owed);
        assertEq(token.balanceOf(requester), balance - escrow);
        assertEq(token.allowance(requester, address(market)), 5e18 - escrow);
        assertEq(token.balanceOf(address(market)), marketBalance + escrow);
    }

    function test_post_revertsWithoutAllowanceWhenOwedFallsShort() public {
        _owedByRefund(requester, 5e17, 7);
        vm.prank(requester);
        token.approve(address(market), 0);
        Intent memory intent = _intent();
        bytes32 jobId = market.hashIntent(intent);
        bytes32 before = _fingerprint(jobId);
        vm.prank(requester);
        vm.expectRevert();
        market.post(intent);
        assertEq(_fingerprint(jobId), before);
    }

    function test_post_rejectedLeavesOwedUntouched() public {
        _owedByRefund(requester, 2e18, 7);
        vm.prank(owner);
        market.pause();
        _expectRejectedPost(_intent(), abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        vm.prank(owner);
        market.unpause();
        _expectRejectedPost(
            _intent().withNonce(7),
            abi.encodeWithSelector(IMarketEvents.NonceAlreadyUsed.selector, requester, 7)
        );
    }

    function testFuzz_post_escrowFromOwedOrAllowance(uint96 owedPrice, uint96 maxPrice) public {
        owedPrice = uint96(bound(owedPrice, 2, 50e18));
        maxPrice = uint96(bound(maxPrice, 2, 50e18));
        uint256 owed = _owedByRefund(requester, owedPrice, 7);
        Intent memory intent = _intent().withMaxPrice(maxPrice);
        if (intent.startPrice != 0) intent.startPrice = maxPrice / 2;
        uint256 escrow = _escrow(maxPrice);
        uint256 balance = token.balanceOf(requester);
        _post(intent);
        if (owed >= escrow) {
            assertEq(market.owed(requester), owed - escrow);
            assertEq(token.balanceOf(requester), balance);
        } else {
            assertEq(market.owed(requester), owed);
            assertEq(token.balanceOf(requester), balance - escrow);
        }
        // the market holds the open escrow plus what it still owes
        assertEq(token.balanceOf(address(market)), market.owed(requester) + escrow);
    }

    function test_submitSigned_takesEscrowFromOwedWhenItCovers() public {
        uint256 owed = _owedByRefund(requester, 2e18, 7);
        uint256 balance = token.balanceOf(requester);
        uint256 allowance = token.allowance(requester, address(market));
        Intent memory intent = _intent();
        bytes memory sig = _sign(intent, requesterKey);
        _recordLogs();
        vm.prank(stranger);
        bytes32 jobId = market.submitSigned(intent, sig);
        assertEq(_tokenEvents(), 0, "a token moved");
        assertEq(uint8(_state(jobId)), uint8(JobState.Open));
        assertEq(market.owed(requester), owed - _escrow(intent.maxPrice));
        assertEq(token.balanceOf(requester), balance);
        assertEq(token.allowance(requester, address(market)), allowance);
        assertEq(token.balanceOf(stranger), FUNDS, "the relayer pays nothing");
    }

    function test_submitSigned_pullsWholeEscrowWhenOwedFallsShort() public {
        uint256 owed = _owedByRefund(requester, 5e17, 7);
        vm.prank(requester);
        token.approve(address(market), 5e18);
        Intent memory intent = _intent();
        uint256 escrow = _escrow(intent.maxPrice);
        uint256 balance = token.balanceOf(requester);
        vm.prank(stranger);
        market.submitSigned(intent, _sign(intent, requesterKey));
        assertEq(market.owed(requester), owed);
        assertEq(token.balanceOf(requester), balance - escrow);
        assertEq(token.allowance(requester, address(market)), 5e18 - escrow);
    }

    function test_challenge_takesBondFromOwedWhenItCovers() public {
        // the challenger's bond came back as credit, with its reward, from an earlier successful challenge
        (bytes32 first,) = _delivered();
        vm.prank(challenger);
        market.challenge(first);
        uint256 reward = uint256(market.job(first).stakeLocked) * 2000 / 10_000;
        vm.warp(market.job(first).disputeEnd + 1);
        market.expire(first);
        // the bond is credited here, the reward in Staking
        assertEq(market.owed(challenger), 1e17);
        assertEq(staking.claimable(challenger), reward);
        Intent memory intent = _intent().withProofMode(PROOF_OPTIMISTIC).withNonce(1);
        bytes32 jobId = _awarded(intent);
        _deliverOptimistic(jobId);
        uint256 balance = token.balanceOf(challenger);
        uint256 allowance = token.allowance(challenger, address(market));
        uint256 marketBalance = token.balanceOf(address(market));
        _recordLogs();
        vm.prank(challenger);
        market.challenge(jobId);
        assertEq(_tokenEvents(), 0, "a token moved");
        assertEq(uint8(_state(jobId)), uint8(JobState.Challenged));
        assertEq(market.job(jobId).challengeBond, 1e17);
        assertEq(market.owed(challenger), 0, "the bond is taken from the credit");
        assertEq(token.balanceOf(challenger), balance);
        assertEq(token.allowance(challenger, address(market)), allowance);
        assertEq(token.balanceOf(address(market)), marketBalance);
    }

    function test_challenge_pullsWholeBondWhenOwedFallsShort() public {
        uint256 owed = _owedByRefund(challenger, 5e16, 0);
        assertLt(owed, 1e17);
        (bytes32 jobId,) = _delivered();
        vm.prank(challenger);
        token.approve(address(market), 1e18);
        uint256 balance = token.balanceOf(challenger);
        vm.prank(challenger);
        market.challenge(jobId);
        assertEq(market.owed(challenger), owed);
        assertEq(token.balanceOf(challenger), balance - 1e17);
        assertEq(token.allowance(challenger, address(market)), 1e18 - 1e17);
    }

    // ================================================================== polycommit input binding

    /// @dev A polycommit model verified by a recorder: instances [0, out0, out1, 0], the input bound by
    /// the proof's first 64 bytes.
    function _polycommitModel() internal returns (CalldataRecorder recorder, bytes32 id) {
        recorder = new CalldataRecorder();
        ModelInfo memory info = _modelInfo(3, 0);
        (info.verifier, info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength) =
        (address(recorder), INPUT_POLYCOMMIT, 0, 1, 2);
        info.instanceCount = 4;
        id = registry.register(info);
    }

    /// @dev A proof whose first point is (x, y), followed by `tail`.
    function _polyProof(bytes32 x, bytes32 y, bytes memory tail) internal pure returns (bytes memory) {
        return abi.encodePacked(x, y, tail);
    }

    function _polyCommitment(bytes32 x, bytes32 y) internal pure returns (uint256) {
        return uint256(keccak256(abi.encodePacked(x, y)));
    }

    function _polyInstances() internal pure returns (uint256[] memory instances) {
        instances = new uint256[](4);
        (instances[1], instances[2]) = (7, 11);
    }

    function _polyJob(bytes32 id, uint8 proofMode) internal returns (bytes32 jobId, Intent memory intent) {
        intent = _intent().withModel(id).withProofMode(proofMode)
            .withCommitment(_polyCommitment(keccak256("x"), keccak256("y")));
        jobId = _awarded(intent);
    }

    function test_deliver_polycommitSettlesWhenProofCommitsToInput() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        (bytes32 jobId,) = _polyJob(id, PROOF_ZK);
        bytes memory proof = _polyProof(keccak256("x"), keccak256("y"), hex"0102030405");
        vm.prank(provider);
        market.deliver(jobId, _output(), proof);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        // zeros and the output only: the commitment is not an instance
        bytes memory expected = abi.encodeCall(IVerifier.verifyProof, (proof, _polyInstances()));
        assertEq(recorder.lastCalldataHash(), keccak256(expected));
        assertEq(recorder.calls(), 1);
        assertEq(market.owed(provider), market.job(jobId).price);
    }

    function test_deliver_polycommitAcceptsExactly64Bytes() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        (bytes32 jobId,) = _polyJob(id, PROOF_ZK);
        bytes memory proof = _polyProof(keccak256("x"), keccak256("y"), "");
        vm.prank(provider);
        market.deliver(jobId, _output(), proof);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        assertEq(
            recorder.lastCalldataHash(),
            keccak256(abi.encodeCall(IVerifier.verifyProof, (proof, _polyInstances())))
        );
    }

    function test_deliver_polycommitRevertsOnOtherInput() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        (bytes32 jobId,) = _polyJob(id, PROOF_ZK);
        bytes32 before = _fingerprint(jobId);
        bytes[3] memory wrong = [
            _polyProof(keccak256("y"), keccak256("x"), hex"01"), // the coordinates swapped
            _polyProof(keccak256("x"), keccak256("z"), hex"01"), // another y
            // the right point, but not first
            abi.encodePacked(bytes1(0), keccak256("x"), keccak256("y"))
        ];
        uint256[] memory out = _output();
        for (uint256 i; i < wrong.length; ++i) {
            vm.prank(provider);
            vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InputMismatch.selector, jobId));
            market.deliver(jobId, out, wrong[i]);
        }
        assertEq(_fingerprint(jobId), before);
        assertEq(recorder.calls(), 0, "the verifier was called");
    }

    function test_deliver_polycommitRevertsOnShortProof() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        // a point whose last byte is zero: 63 bytes of it, zero-padded in calldata, would hash right
        bytes32 x = keccak256("x");
        bytes32 y = bytes32(uint256(keccak256("y")) << 8);
        Intent memory intent =
            _intent().withModel(id).withProofMode(PROOF_ZK).withCommitment(_polyCommitment(x, y));
        bytes32 jobId = _awarded(intent);
        bytes32 before = _fingerprint(jobId);
        uint256[] memory out = _output();
        bytes[3] memory short = [abi.encodePacked(x, bytes31(y)), abi.encodePacked(x), bytes("")];
        for (uint256 i; i < short.length; ++i) {
            vm.prank(provider);
            vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InputMismatch.selector, jobId));
            market.deliver(jobId, out, short[i]);
        }
        assertEq(_fingerprint(jobId), before);
        assertEq(recorder.calls(), 0);
    }

    function test_deliver_polycommitStillChecksTheVerifier() public {
        // a bound input does not make a proof valid: MockVerifier rejects everything here
        ModelInfo memory info = _modelInfo(3, 0);
        (info.inputBinding, info.commitmentIndex, info.outputOffset, info.outputLength, info.instanceCount) =
            (INPUT_POLYCOMMIT, 0, 0, 2, 2);
        bytes32 id = registry.register(info);
        (bytes32 jobId,) = _polyJob(id, PROOF_ZK);
        verifier.setMode(MockVerifier.Mode.RejectAll);
        bytes32 before = _fingerprint(jobId);
        uint256[] memory out = _output();
        bytes memory proof = _polyProof(keccak256("x"), keccak256("y"), hex"01");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(IMarketEvents.ProofRejected.selector, jobId));
        market.deliver(jobId, out, proof);
        assertEq(_fingerprint(jobId), before);
    }

    function test_deliver_polycommitOptimisticWithoutProofSkipsBinding() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        (bytes32 jobId,) = _polyJob(id, PROOF_OPTIMISTIC);
        _deliverOptimistic(jobId);
        assertEq(uint8(_state(jobId)), uint8(JobState.Delivered));
        assertEq(recorder.calls(), 0);
    }

    function test_prove_polycommitBindsInput() public {
        (CalldataRecorder recorder, bytes32 id) = _polycommitModel();
        (bytes32 jobId,) = _polyJob(id, PROOF_OPTIMISTIC);
        _deliverOptimistic(jobId);
        vm.prank(challenger);
        market.challenge(jobId);
        bytes32 before = _fingerprint(jobId);
        bytes[2] memory wrong =
            [_polyProof(keccak256("x"), keccak256("z"), hex"01"), abi.encodePacked(keccak256("x"))];
        for (uint256 i; i < wrong.length; ++i) {
            vm.prank(provider);
            vm.expectRevert(abi.encodeWithSelector(IMarketEvents.InputMismatch.selector, jobId));
            market.prove(jobId, wrong[i]);
        }
        assertEq(_fingerprint(jobId), before);
        assertEq(recorder.calls(), 0);

        bytes memory proof = _polyProof(keccak256("x"), keccak256("y"), hex"0a0b");
        vm.prank(provider);
        market.prove(jobId, proof);
        assertEq(uint8(_state(jobId)), uint8(JobState.Settled));
        bytes memory expected = abi.encodeCall(IVerifier.verifyProof, (proof, _polyInstances()));
        assertEq(recorder.lastCalldataHash(), keccak256(expected));
        assertEq(recorder.calls(), 1);
        assertEq(market.owed(provider), market.job(jobId).price + 1e17);
    }

    // ================================================================== accounting (fuzz)

    /// @dev Whatever the price and fee, settlement pays out exactly the escrow.
    function testFuzz_deliver_conservesEscrow(uint96 maxPrice, uint16 feeBps, uint96 price) public {
        maxPrice = uint96(bound(maxPrice, 2, 40e18));
        price = uint96(bound(price, 1, maxPrice));
        feeBps = uint16(bound(feeBps, 0, 500));
        MarketParams memory p = _defaultParams();
        p.feeBps = feeBps;
        p.stakeMultiple = 1;
        // a multiple of 1 leaves no room for a challenger reward (see test_setParams_revertsOnBadParams)
        p.challengerRewardBps = 0;
        _applyParams(p);
        Intent memory intent = _intent().withMaxPrice(maxPrice);
        if (intent.startPrice != 0) intent.startPrice = price;
        uint256 total = token.balanceOf(requester) + token.balanceOf(provider) + token.balanceOf(treasury);
        bytes32 jobId = _post(intent);
        _awardTo(jobId, provider, price, 60);
        _deliver(jobId, intent);
        uint256 escrow = uint256(maxPrice) + uint256(maxPrice) * feeBps / 10_000;
        assertEq(
            market.feesOwed() + market.owed(provider) + market.owed(requester), escrow, "split != escrow"
        );
        assertEq(token.balanceOf(address(market)), escrow);
        market.withdrawFees();
        _withdrawAll(provider);
        _withdrawAll(requester);
        assertEq(token.balanceOf(address(market)), 0);
        assertEq(token.balanceOf(requester) + token.balanceOf(provider) + token.balanceOf(treasury), total);
        assertLe(market.job(jobId).price, maxPrice);
    }
}
