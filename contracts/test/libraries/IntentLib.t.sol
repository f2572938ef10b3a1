// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {TenderFixture} from "../utils/TenderFixture.sol";
import {IntentLib} from "../../src/libraries/IntentLib.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {Intent} from "../../src/MarketStructs.sol";

/// @notice The EIP-712 encoding against a vector produced by Python eth-account `encode_typed_data`
/// (the signer the Python side uses), so the two can never drift apart silently.
contract IntentLibTest is TenderFixture {
    address internal constant PY_REQUESTER = 0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A; // key 0x11..11
    address internal constant PY_MARKET = address(0xaa);
    bytes32 internal constant PY_DIGEST = 0x915cdc6edfe73c1cb20f0382bfa8bce7c982e5706f8ca30de4590de6927de8f7;
    bytes internal constant PY_SIGNATURE =
        hex"96e1ecf4643c0a01f91c7059e36fd20774555dde94ef06046e4017a0d3885f1b3c9c9354042c2c2e4f186cd38b5033a28f2e9b12e57aad8d18cbed522e6755771c";

    function setUp() public {
        _deployCore();
    }

    function _pyIntent() internal pure returns (Intent memory i) {
        i.requester = PY_REQUESTER;
        i.modelId = bytes32(0x4242424242424242424242424242424242424242424242424242424242424242);
        i.inputCommitment = 12_345_678_901_234_567_890;
        i.inputLocation = bytes("ipfs://bafy-input");
        i.maxPrice = 1e18;
        i.startPrice = 5e17;
        i.auctionType = 1;
        i.auctionWindow = 60;
        i.deadline = 1_700_000_600;
        i.proofMode = 1;
        i.minStake = 3e18;
        i.region = "eu";
        i.priceWeightBps = 7000;
        i.allowFailover = true;
        i.callbackGasLimit = 150_000;
        i.nonce = (5 << 8) | 3;
        i.expiry = 1_700_003_600;
    }

    function test_typeString_isCanonical() public pure {
        assertEq(
            IntentLib.INTENT_TYPEHASH,
            keccak256(
                "Intent(address requester,bytes32 modelId,uint256 inputCommitment,bytes inputLocation,"
                "uint256 maxPrice,uint256 startPrice,uint8 auctionType,uint32 auctionWindow,uint64 deadline,"
                "uint8 proofMode,uint256 minStake,bytes2 region,uint16 priceWeightBps,bool allowFailover,"
                "uint32 callbackGasLimit,uint256 nonce,uint64 expiry)"
            )
        );
    }

    function test_hashIntent_matchesEthAccount() public {
        vm.chainId(31_337);
        DutchAuctionMarket m =
            new DutchAuctionMarket(token, registry, staking, treasury, owner, _defaultParams());
        // the market's code at the address the Python vector was made for (EIP712 rebuilds the domain)
        vm.etch(PY_MARKET, address(m).code);
        assertEq(IMarket(PY_MARKET).hashIntent(_pyIntent()), PY_DIGEST);
        assertEq(ECDSA.recover(PY_DIGEST, PY_SIGNATURE), PY_REQUESTER);
    }
}
