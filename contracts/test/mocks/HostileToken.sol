// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A mintable ERC20 that, once armed, makes one arbitrary call from inside a transfer to a chosen
/// account: the way a token with hooks (ERC-777 style) or a malicious token re-enters whoever pays out.
/// The hook's revert is swallowed so that the outer transfer goes on, and its outcome is recorded.
contract HostileToken is ERC20 {
    address public hookTrigger; // the hook fires when tokens are sent to this account
    address public hookTarget;
    bytes public hookData;
    bool public armed;
    bool public hookFired;
    bool public hookSucceeded;
    bytes public hookReturn;

    constructor() ERC20("Hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Fires `target.call(data)` on the next transfer to `trigger`, once.
    function arm(address trigger, address target, bytes calldata data) external {
        (hookTrigger, hookTarget, hookData, armed) = (trigger, target, data, true);
        (hookFired, hookSucceeded) = (false, false);
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && to == hookTrigger) {
            armed = false;
            hookFired = true;
            (hookSucceeded, hookReturn) = hookTarget.call(hookData);
        }
    }
}
