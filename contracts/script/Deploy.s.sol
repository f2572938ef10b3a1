// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Vm} from "../test/utils/Vm.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {TestToken} from "../src/TestToken.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Staking} from "../src/Staking.sol";
import {ReverseAuctionMarket} from "../src/ReverseAuctionMarket.sol";
import {DutchAuctionMarket} from "../src/DutchAuctionMarket.sol";
import {QuoteMarket} from "../src/QuoteMarket.sol";
import {MarketParams} from "../src/MarketStructs.sol";

/// @notice Deploys a full Tender stack (a TestToken unless TOKEN is set) and writes
/// deployments/<chainId>.json. `forge script script/Deploy.s.sol --broadcast --private-key ...`
/// Env: TOKEN (address), OWNER, TREASURY (default: the broadcaster), UNSTAKING_DELAY (seconds, 1 day).
/// The folder ../deployments must exist (fs_permissions only resolve existing paths).
contract Deploy {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    /// @dev A job counts for reputation only if its protocol fee reaches this (0.001 token at 18 decimals).
    uint256 internal constant MIN_COUNTED_FEE = 1e15;

    function defaultParams() public pure returns (MarketParams memory) {
        return MarketParams({
            feeBps: 100,
            stakeMultiple: 2,
            challengerRewardBps: 2000,
            challengeWindow: 30 minutes,
            proofWindow: 15 minutes,
            maxCallbackGas: 500_000,
            challengeBond: 1e18
        });
    }

    function run() external {
        vm.startBroadcast();
        address self = msg.sender;
        address owner = vm.envOr("OWNER", self);
        address treasury = vm.envOr("TREASURY", self);
        uint64 delay = uint64(vm.envOr("UNSTAKING_DELAY", uint256(1 days)));
        address tokenAddr = vm.envOr("TOKEN", address(0));
        if (tokenAddr == address(0)) tokenAddr = address(new TestToken("Tender USD", "TUSD", 18));
        IERC20 token = IERC20(tokenAddr);

        ModelRegistry registry = new ModelRegistry();
        // the broadcaster owns Staking until the markets are authorised, then hands it over
        Staking staking = new Staking(token, self, delay, MIN_COUNTED_FEE);
        ReverseAuctionMarket reverse =
            new ReverseAuctionMarket(token, registry, staking, treasury, owner, defaultParams());
        DutchAuctionMarket dutch =
            new DutchAuctionMarket(token, registry, staking, treasury, owner, defaultParams());
        QuoteMarket quote = new QuoteMarket(token, registry, staking, treasury, owner, defaultParams());
        staking.setMarket(address(reverse), true);
        staking.setMarket(address(dutch), true);
        staking.setMarket(address(quote), true);
        if (owner != self) staking.transferOwnership(owner); // Ownable2Step: owner must accept
        vm.stopBroadcast();

        string memory key = "deployment";
        vm.serializeUint(key, "chainId", block.chainid);
        vm.serializeAddress(key, "token", tokenAddr);
        vm.serializeAddress(key, "registry", address(registry));
        vm.serializeAddress(key, "staking", address(staking));
        vm.serializeAddress("markets", "reverse", address(reverse));
        vm.serializeAddress("markets", "dutch", address(dutch));
        string memory markets = vm.serializeAddress("markets", "quote", address(quote));
        vm.serializeString(key, "markets", markets);
        string memory json = vm.serializeUint(key, "block", block.number);
        vm.writeJson(json, string.concat("../deployments/", vm.toString(block.chainid), ".json"));
    }
}
