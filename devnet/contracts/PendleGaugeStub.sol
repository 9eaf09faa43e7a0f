// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title PendleGaugeStub: bondfolio's own stand-in for Pendle's gauge controller, written by the project.
/// @notice The real PendleMarketV7 reads `pendle()` in its constructor (the reward token, whose balance the
///         market's reward index reads on every LP balance change) and calls `redeemMarketReward()` on each
///         LP transfer. Emissions play no part in PT prices or swaps, so this stub pays none; the real
///         `PendleGaugeControllerUpg` needs vePendle voting, which a local node's tests do not exercise.
contract PendleGaugeStub {
    address public immutable pendle;

    constructor(address pendle_) {
        pendle = pendle_;
    }

    function redeemMarketReward() external {}
}
