// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AuctionTerms, JobState, JobTerms} from "../MarketStructs.sol";

/// @title TermsLib
/// @notice The word an Open reverse-auction job stores: the hash of its `AuctionTerms` (which carry the hash of
/// its `JobTerms`) in the high 248 bits and the job's state, Open, in the low byte, where `JobRecord.state` sits
/// (the job record's slot 1, which the award overwrites with the record's own fields).
library TermsLib {
    uint256 private constant _STATE_MASK = 0xff;

    /// @dev The Open word of calldata terms (`MarketExtension._openWord` writes it at posting from the same
    /// encoding), hashed as they were sent: terms with dirty padding hash to another word, so they can only fail
    /// the check (`TermsMismatch`), never pass it.
    function openWordOf(AuctionTerms calldata terms) internal pure returns (uint256 word) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            // AuctionTerms is static: seven words, inline in calldata
            calldatacopy(ptr, terms, 0xe0)
            word := keccak256(ptr, 0xe0)
        }
        word = (word & ~_STATE_MASK) | uint256(uint8(JobState.Open));
    }

    /// @dev keccak256(abi.encode(job)), as `AuctionTerms.jobTerms` holds it.
    function hash(JobTerms memory job) internal pure returns (bytes32) {
        return keccak256(abi.encode(job));
    }

    /// @dev The same hash from calldata (see `openWordOf` for dirty padding).
    function hashOf(JobTerms calldata job) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            // JobTerms is static: eight words, inline in calldata
            calldatacopy(ptr, job, 0x100)
            h := keccak256(ptr, 0x100)
        }
    }
}
