// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {AdversarialBase} from "./AdversarialBase.sol";
import {Bid, Intent} from "../../src/MarketStructs.sol";

/// @notice The world of the reverse-auction book tests (`PushoutsTest`, `BookWordsTest`): both markets over the
/// fixture token, and posting, bidding, awarding and refunding (with the job's posted terms) as the intent's
/// requester, the bidding provider and anyone.
abstract contract ReverseBookBase is AdversarialBase {
    World internal w;

    function setUp() public virtual {
        _deployCore();
        w = _world(IERC20(address(token)), token.mint);
    }

    function _post(Intent memory intent) internal returns (bytes32 jobId) {
        vm.prank(intent.requester);
        jobId = w.reverse.post(intent);
    }

    function _bid(bytes32 jobId, address p, uint96 price, uint32 latency) internal {
        _bidOn(w.reverse, jobId, p, Bid(p, price, latency));
    }

    function _award(bytes32 jobId) internal {
        _awardOn(w.reverse, jobId);
    }

    function _refund(bytes32 jobId) internal {
        _refundOn(w.reverse, jobId);
    }
}
