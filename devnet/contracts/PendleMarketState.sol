// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title PendleMarketState: bondfolio's own contract with Pendle v2 PendleMarket's read ABI.
/// @notice A full Pendle deployment is heavy and `@pendle/core-v2` does not install from npm, so the
///         readers are tested against this contract written by the bondfolio project. It exposes the
///         market's view functions with Pendle's exact signatures and struct layout: `readState(router)`
///         returning MarketState, `expiry()`, `isExpired()`, `readTokens()` and `observe(uint32[])`.
///         `lastLnImpliedRate` is ln(1 + implied APY) scaled by 1e18, as in Pendle.
contract PendleMarketState {
    struct MarketState {
        int256 totalPt;
        int256 totalSy;
        int256 totalLp;
        address treasury;
        int256 scalarRoot;
        uint256 expiry;
        uint256 lnFeeRateRoot;
        uint256 reserveFeePercent;
        uint256 lastLnImpliedRate;
    }

    MarketState internal _state;
    address public immutable SY;
    address public immutable PT;
    address public immutable YT;

    constructor(MarketState memory state_, address sy, address pt, address yt) {
        _state = state_;
        SY = sy;
        PT = pt;
        YT = yt;
    }

    function readState(address /* router */) external view returns (MarketState memory) {
        return _state;
    }

    function expiry() external view returns (uint256) {
        return _state.expiry;
    }

    function isExpired() public view returns (bool) {
        return block.timestamp >= _state.expiry;
    }

    function readTokens() external view returns (address _SY, address _PT, address _YT) {
        return (SY, PT, YT);
    }

    /// @notice Cumulative ln implied rate, as if constant at lastLnImpliedRate (enough for a TWAP).
    function observe(uint32[] memory secondsAgos) external view returns (uint216[] memory cumulative) {
        cumulative = new uint216[](secondsAgos.length);
        for (uint256 i = 0; i < secondsAgos.length; i++) {
            cumulative[i] = uint216(_state.lastLnImpliedRate * (block.timestamp - secondsAgos[i]));
        }
    }

    /// @notice Test setter for the implied rate.
    function setLnImpliedRate(uint256 lnImpliedRate) external {
        _state.lastLnImpliedRate = lnImpliedRate;
    }
}
