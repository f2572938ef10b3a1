// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ITenderConsumer} from "../../src/interfaces/ITenderConsumer.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {Intent} from "../../src/MarketStructs.sol";

/// @notice A requester contract whose result callback replays a chosen market call (deliver, prove,
/// finalize, expire, refund, challenge, post...) to try to be paid, refunded or settled twice. It records
/// whether the re-entry went through and what it reverted with.
contract HostileConsumer is ITenderConsumer {
    bytes public attack;
    bool public attacked;
    bool public attackSucceeded;
    bytes public attackError;

    function post(IMarket market, IERC20 token, Intent calldata intent) external returns (bytes32) {
        token.approve(address(market), type(uint256).max);
        return market.post(intent);
    }

    function setAttack(bytes calldata data) external {
        attack = data;
    }

    function onTenderResult(bytes32, uint256[] calldata) external {
        attacked = true;
        (attackSucceeded, attackError) = msg.sender.call(attack);
    }
}
