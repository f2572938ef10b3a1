// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ITenderConsumer} from "../../src/interfaces/ITenderConsumer.sol";
import {IMarket} from "../../src/interfaces/IMarket.sol";
import {Intent} from "../../src/MarketStructs.sol";

/// @notice A requester contract whose callback behaves as told: records, reverts, burns all gas, returns
/// a huge revert payload, or tries to re-enter the market.
contract MockConsumer is ITenderConsumer {
    enum Behaviour {
        Record,
        Revert,
        BurnGas,
        ReturnBomb,
        Reenter
    }

    Behaviour public behaviour;
    bytes32 public lastJobId;
    uint256[] public lastOutput;
    uint256 public calls;
    bool public reentryFailed;

    function setBehaviour(Behaviour b) external {
        behaviour = b;
    }

    function post(IMarket market, IERC20 token, Intent calldata intent) external returns (bytes32) {
        token.approve(address(market), type(uint256).max);
        return market.post(intent);
    }

    function onTenderResult(bytes32 jobId, uint256[] calldata output) external {
        Behaviour b = behaviour;
        if (b == Behaviour.Revert) revert("consumer says no");
        if (b == Behaviour.BurnGas) {
            while (true) {}
        }
        if (b == Behaviour.ReturnBomb) {
            assembly {
                revert(0, 100000)
            }
        }
        if (b == Behaviour.Reenter) {
            try IMarket(msg.sender).refund(jobId) {}
            catch {
                reentryFailed = true;
            }
        }
        lastJobId = jobId;
        lastOutput = output;
        ++calls;
    }

    function outputLength() external view returns (uint256) {
        return lastOutput.length;
    }
}
