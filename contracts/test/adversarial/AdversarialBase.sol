// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {TenderFixture} from "../utils/TenderFixture.sol";
import {IntentBuilder} from "../utils/IntentBuilder.sol";
import {Staking} from "../../src/Staking.sol";
import {DutchAuctionMarket} from "../../src/DutchAuctionMarket.sol";
import {ReverseAuctionMarket} from "../../src/ReverseAuctionMarket.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {Intent, MarketParams, AUCTION_DUTCH} from "../../src/MarketStructs.sol";

/// @notice Fixture core (registry, models, verifier, actors) plus markets wired to any payment token, for
/// attacks that need a token of their own.
abstract contract AdversarialBase is TenderFixture {
    using IntentBuilder for Intent;

    struct World {
        IERC20 token;
        Staking staking;
        DutchAuctionMarket dutch;
        ReverseAuctionMarket reverse;
    }

    /// @dev A Staking and both markets over `token_`; the three fixture providers stake STAKE of it and
    /// the requester and challenger approve both markets. `mint` is the token's mint function.
    function _world(IERC20 token_, function(address, uint256) external mint)
        internal
        returns (World memory w)
    {
        w.token = token_;
        w.staking = new Staking(token_, owner, UNSTAKING, 1e15);
        w.dutch = new DutchAuctionMarket(token_, registry, w.staking, treasury, owner, _defaultParams());
        w.reverse = new ReverseAuctionMarket(token_, registry, w.staking, treasury, owner, _defaultParams());
        vm.startPrank(owner);
        w.staking.setMarket(address(w.dutch), true);
        _activate(w.staking, address(w.dutch));
        w.staking.setMarket(address(w.reverse), true);
        _activate(w.staking, address(w.reverse));
        vm.stopPrank();
        address[3] memory ps = [provider, provider2, provider3];
        for (uint256 i; i < 3; ++i) {
            mint(ps[i], STAKE);
            vm.startPrank(ps[i]);
            token_.approve(address(w.staking), type(uint256).max);
            w.staking.stake(STAKE);
            w.staking.setSolver(solver, true);
            vm.stopPrank();
        }
        address[2] memory payers = [requester, challenger];
        for (uint256 i; i < 2; ++i) {
            mint(payers[i], FUNDS);
            vm.startPrank(payers[i]);
            token_.approve(address(w.dutch), type(uint256).max);
            token_.approve(address(w.reverse), type(uint256).max);
            vm.stopPrank();
        }
    }

    /// @dev A Dutch intent from the fixture requester: start 0.5, max 1 token, 60 s window.
    function _dutchIntent() internal view returns (Intent memory) {
        return IntentBuilder.init(requester, modelId).withAuctionType(AUCTION_DUTCH).withStartPrice(5e17);
    }

    /// @dev Posts `intent` and fills it at once for `provider` (price = startPrice) with a 60 s latency.
    function _postAndFill(DutchAuctionMarket m, Intent memory intent) internal returns (bytes32 jobId) {
        vm.prank(intent.requester);
        jobId = m.post(intent);
        vm.prank(provider);
        m.fill(jobId, provider, 60);
    }

    function _escrow(IMarket m, uint256 maxPrice) internal view returns (uint256) {
        return maxPrice + maxPrice * m.params().feeBps / 10_000;
    }
}
