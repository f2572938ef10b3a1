// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A token with the quirks of real stablecoins that tooling written against an
/// 18-decimal OpenZeppelin ERC20 gets wrong: few decimals (USDT 6, many test tokens 2), a
/// `bytes32` symbol (MKR, SAI), `transfer`/`transferFrom`/`approve` that return nothing (USDT),
/// and USDT's approve rule: a non-zero allowance may only be set back to zero, never changed to
/// another non-zero value. Anyone may mint (tests only).
contract UsdtStyleToken {
    /// @notice `approve` from one non-zero allowance to another (USDT refuses it).
    error ApproveFromNonZero(address owner, address spender, uint256 current, uint256 wanted);
    /// @notice A balance or allowance does not cover the amount.
    error InsufficientFunds(address owner, uint256 available, uint256 wanted);

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    bytes32 public constant symbol = "USDX";
    bytes32 public constant name = "USDT-style test token";
    uint8 public immutable decimals;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    constructor(uint8 decimals_) {
        decimals = decimals_;
    }

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external {
        uint256 current = allowance[msg.sender][spender];
        if (amount != 0 && current != 0) revert ApproveFromNonZero(msg.sender, spender, current, amount);
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientFunds(from, allowed, amount);
            allowance[from][msg.sender] = allowed - amount;
        }
        _move(from, to, amount);
    }

    function _move(address from, address to, uint256 amount) private {
        uint256 balance = balanceOf[from];
        if (balance < amount) revert InsufficientFunds(from, balance, amount);
        balanceOf[from] = balance - amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
