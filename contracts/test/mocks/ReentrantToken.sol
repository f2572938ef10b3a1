// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A hostile ERC20 that calls back into a target on every transfer (as an ERC-777 hook would).
contract ReentrantToken is ERC20 {
    address public target;
    bytes public data;
    bool public attempted;
    bool public succeeded;
    bytes public revertData;

    constructor() ERC20("Hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address t = target;
        if (t != address(0) && from != address(0) && to != address(0)) {
            target = address(0); // once
            attempted = true;
            (bool ok, bytes memory ret) = t.call(data);
            succeeded = ok;
            revertData = ret;
        }
    }
}
