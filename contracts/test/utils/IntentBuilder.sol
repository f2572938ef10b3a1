// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Intent, AUCTION_REVERSE, PROOF_ZK} from "../../src/MarketStructs.sol";

/// @notice Fluent builder: `IntentBuilder.init(requester, modelId).withMaxPrice(p).withDeadline(d)`.
/// Defaults: reverse auction, zk, 1 token max price, 60 s window, deadline 10 minutes out, expiry 1 hour
/// out, price weight 50%, no callback, nonce 0.
library IntentBuilder {
    function init(address requester, bytes32 modelId) internal view returns (Intent memory intent) {
        intent.requester = requester;
        intent.modelId = modelId;
        intent.inputCommitment = uint256(keccak256("input")) >> 4;
        intent.inputLocation = bytes("ipfs://bafy-input");
        intent.maxPrice = 1e18;
        intent.startPrice = 0;
        intent.auctionType = AUCTION_REVERSE;
        intent.auctionWindow = 60;
        intent.deadline = uint64(block.timestamp + 600);
        intent.proofMode = PROOF_ZK;
        intent.minStake = 0;
        intent.region = bytes2(0);
        intent.priceWeightBps = 5000;
        intent.allowFailover = false;
        intent.callbackGasLimit = 0;
        intent.nonce = 0;
        intent.expiry = uint64(block.timestamp + 3600);
    }

    function withRequester(Intent memory i, address v) internal pure returns (Intent memory) {
        i.requester = v;
        return i;
    }

    function withModel(Intent memory i, bytes32 v) internal pure returns (Intent memory) {
        i.modelId = v;
        return i;
    }

    function withCommitment(Intent memory i, uint256 v) internal pure returns (Intent memory) {
        i.inputCommitment = v;
        return i;
    }

    function withInputLocation(Intent memory i, bytes memory v) internal pure returns (Intent memory) {
        i.inputLocation = v;
        return i;
    }

    function withMaxPrice(Intent memory i, uint256 v) internal pure returns (Intent memory) {
        i.maxPrice = v;
        return i;
    }

    function withStartPrice(Intent memory i, uint256 v) internal pure returns (Intent memory) {
        i.startPrice = v;
        return i;
    }

    function withAuctionType(Intent memory i, uint8 v) internal pure returns (Intent memory) {
        i.auctionType = v;
        return i;
    }

    function withWindow(Intent memory i, uint32 v) internal pure returns (Intent memory) {
        i.auctionWindow = v;
        return i;
    }

    function withDeadline(Intent memory i, uint64 v) internal pure returns (Intent memory) {
        i.deadline = v;
        return i;
    }

    function withProofMode(Intent memory i, uint8 v) internal pure returns (Intent memory) {
        i.proofMode = v;
        return i;
    }

    function withMinStake(Intent memory i, uint256 v) internal pure returns (Intent memory) {
        i.minStake = v;
        return i;
    }

    function withRegion(Intent memory i, bytes2 v) internal pure returns (Intent memory) {
        i.region = v;
        return i;
    }

    function withPriceWeight(Intent memory i, uint16 v) internal pure returns (Intent memory) {
        i.priceWeightBps = v;
        return i;
    }

    function withFailover(Intent memory i, bool v) internal pure returns (Intent memory) {
        i.allowFailover = v;
        return i;
    }

    function withCallbackGas(Intent memory i, uint32 v) internal pure returns (Intent memory) {
        i.callbackGasLimit = v;
        return i;
    }

    function withNonce(Intent memory i, uint256 v) internal pure returns (Intent memory) {
        i.nonce = v;
        return i;
    }

    function withExpiry(Intent memory i, uint64 v) internal pure returns (Intent memory) {
        i.expiry = v;
        return i;
    }
}
