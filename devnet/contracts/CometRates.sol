// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

interface IERC20Like {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
}

/// @title CometRates: bondfolio's own contract with Compound v3 (Comet)'s rate ABI and math.
/// @notice Comet is not published in the package registries, so the readers are tested against this
///         contract written by the bondfolio project. It keeps Comet's function names, types and
///         interest-rate model exactly: per-second rates scaled by 1e18 (FACTOR_SCALE), utilization =
///         totalBorrow * 1e18 / totalSupply, and the kinked supply/borrow curves
///         `rate = base + low * min(u, kink) + high * max(u - kink, 0)` with `mulFactor(n, f) = n * f / 1e18`.
///         Totals are kept as present values (Comet accrues them with its indexes; here they only
///         change through `supply`, `withdraw` and the test setter `setTotals`). Accounts' base
///         balances follow Comet's ABI: `balanceOf`, `supply`/`supplyTo` credit them, `withdraw`
///         debits them and `withdraw(asset, type(uint256).max)` takes the whole balance (Comet's idiom);
///         a withdrawal needs the contract to hold the tokens (its cash), as Comet does.
contract CometRates {
    uint64 internal constant FACTOR_SCALE = 1e18;

    address public immutable baseToken;
    uint64 public immutable supplyKink;
    uint64 public immutable supplyPerSecondInterestRateSlopeLow;
    uint64 public immutable supplyPerSecondInterestRateSlopeHigh;
    uint64 public immutable supplyPerSecondInterestRateBase;
    uint64 public immutable borrowKink;
    uint64 public immutable borrowPerSecondInterestRateSlopeLow;
    uint64 public immutable borrowPerSecondInterestRateSlopeHigh;
    uint64 public immutable borrowPerSecondInterestRateBase;

    uint256 internal _totalSupply;
    uint256 internal _totalBorrow;
    mapping(address => uint256) public balanceOf;

    constructor(address baseToken_, uint64[8] memory params) {
        baseToken = baseToken_;
        supplyKink = params[0];
        supplyPerSecondInterestRateSlopeLow = params[1];
        supplyPerSecondInterestRateSlopeHigh = params[2];
        supplyPerSecondInterestRateBase = params[3];
        borrowKink = params[4];
        borrowPerSecondInterestRateSlopeLow = params[5];
        borrowPerSecondInterestRateSlopeHigh = params[6];
        borrowPerSecondInterestRateBase = params[7];
    }

    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    function totalBorrow() external view returns (uint256) {
        return _totalBorrow;
    }

    function getUtilization() public view returns (uint256) {
        if (_totalSupply == 0) return 0;
        return _totalBorrow * FACTOR_SCALE / _totalSupply;
    }

    function getSupplyRate(uint256 utilization) public view returns (uint64) {
        if (utilization <= supplyKink) {
            return supplyPerSecondInterestRateBase + mulFactor(supplyPerSecondInterestRateSlopeLow, utilization);
        }
        return supplyPerSecondInterestRateBase + mulFactor(supplyPerSecondInterestRateSlopeLow, supplyKink)
            + mulFactor(supplyPerSecondInterestRateSlopeHigh, utilization - supplyKink);
    }

    function getBorrowRate(uint256 utilization) public view returns (uint64) {
        if (utilization <= borrowKink) {
            return borrowPerSecondInterestRateBase + mulFactor(borrowPerSecondInterestRateSlopeLow, utilization);
        }
        return borrowPerSecondInterestRateBase + mulFactor(borrowPerSecondInterestRateSlopeLow, borrowKink)
            + mulFactor(borrowPerSecondInterestRateSlopeHigh, utilization - borrowKink);
    }

    function supply(address asset, uint256 amount) external {
        _supply(msg.sender, asset, amount);
    }

    function supplyTo(address dst, address asset, uint256 amount) external {
        _supply(dst, asset, amount);
    }

    function _supply(address dst, address asset, uint256 amount) internal {
        require(asset == baseToken, "CometRates: only the base token");
        require(IERC20Like(asset).transferFrom(msg.sender, address(this), amount), "CometRates: transfer failed");
        balanceOf[dst] += amount;
        _totalSupply += amount;
    }

    function withdraw(address asset, uint256 amount) external {
        require(asset == baseToken, "CometRates: only the base token");
        if (amount == type(uint256).max) amount = balanceOf[msg.sender];
        require(balanceOf[msg.sender] >= amount, "CometRates: balance");
        balanceOf[msg.sender] -= amount;
        _totalSupply -= amount;
        require(IERC20Like(asset).transfer(msg.sender, amount), "CometRates: transfer failed");
    }

    /// @notice Test setter: the present-value totals (what Comet's totalSupply()/totalBorrow() return).
    function setTotals(uint256 supply_, uint256 borrow_) external {
        _totalSupply = supply_;
        _totalBorrow = borrow_;
    }

    function mulFactor(uint256 n, uint256 factor) internal pure returns (uint64) {
        return uint64(n * factor / FACTOR_SCALE);
    }
}
