// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title AdaptiveCurveIrm: bondfolio's own contract with Morpho's adaptive-curve IRM ABI and math.
/// @notice Morpho's adaptive-curve IRM is not published in the package registries; the bondfolio project
///         wrote this contract from the published model so the Morpho Blue reader can be tested on a real
///         Morpho deployment. ABI: `MORPHO()`, `rateAtTarget(bytes32)`, `borrowRate(MarketParams, Market)`
///         (Morpho only; stores the new rate at target) and `borrowRateView(MarketParams, Market)`.
///         Model (all per second, WAD = 1e18): utilization u = borrow / supply, target 0.9;
///         err = (u - 0.9) / 0.9 below target, (u - 0.9) / 0.1 above; curve steepness C = 4:
///         rate = (1 + coeff * err) * rateAtTarget with coeff = 1 - 1/C for err < 0, C - 1 otherwise.
///         rateAtTarget adapts continuously: end = start * exp(speed * err * elapsed), speed = 50 / year,
///         bounded to [0.1 %, 200 %] per year; the rate charged over the elapsed period uses the
///         trapezoidal average (start + end + 2 * mid) / 4. exp is a second-order expansion around
///         the nearest multiple of ln 2, as in Morpho's library. Initial rate at target: 4 % per year.
contract AdaptiveCurveIrm {
    struct MarketParams {
        address loanToken;
        address collateralToken;
        address oracle;
        address irm;
        uint256 lltv;
    }

    struct Market {
        uint128 totalSupplyAssets;
        uint128 totalSupplyShares;
        uint128 totalBorrowAssets;
        uint128 totalBorrowShares;
        uint128 lastUpdate;
        uint128 fee;
    }

    int256 internal constant WAD = 1e18;
    int256 public constant CURVE_STEEPNESS = 4 ether;
    int256 public constant ADJUSTMENT_SPEED = 50 ether / int256(365 days);
    int256 public constant TARGET_UTILIZATION = 0.9 ether;
    int256 public constant INITIAL_RATE_AT_TARGET = 0.04 ether / int256(365 days);
    int256 public constant MIN_RATE_AT_TARGET = 0.001 ether / int256(365 days);
    int256 public constant MAX_RATE_AT_TARGET = 2.0 ether / int256(365 days);

    int256 internal constant LN_2 = 0.693147180559945309 ether;
    int256 internal constant LN_WEI = -41.446531673892822312 ether;
    int256 internal constant EXP_UPPER_BOUND = 93.859467695000404319 ether;
    int256 internal constant EXP_UPPER_VALUE = 57716089161558943949701069502944508345128422502756744429568;

    address public immutable MORPHO;
    mapping(bytes32 => int256) public rateAtTarget;

    event BorrowRateUpdate(bytes32 indexed id, uint256 avgBorrowRate, uint256 rateAtTarget);

    constructor(address morpho) {
        require(morpho != address(0), "zero address");
        MORPHO = morpho;
    }

    function borrowRateView(MarketParams memory marketParams, Market memory market) external view returns (uint256) {
        (uint256 avgRate,) = _borrowRate(_id(marketParams), market);
        return avgRate;
    }

    function borrowRate(MarketParams memory marketParams, Market memory market) external returns (uint256) {
        require(msg.sender == MORPHO, "not Morpho");
        bytes32 id = _id(marketParams);
        (uint256 avgRate, int256 endRateAtTarget) = _borrowRate(id, market);
        rateAtTarget[id] = endRateAtTarget;
        emit BorrowRateUpdate(id, avgRate, uint256(endRateAtTarget));
        return avgRate;
    }

    function _id(MarketParams memory marketParams) internal pure returns (bytes32) {
        return keccak256(abi.encode(marketParams));
    }

    function _borrowRate(bytes32 id, Market memory market) internal view returns (uint256, int256) {
        int256 utilization = market.totalSupplyAssets > 0
            ? int256(uint256(market.totalBorrowAssets) * uint256(WAD) / market.totalSupplyAssets)
            : int256(0);
        int256 normalizer = utilization > TARGET_UTILIZATION ? WAD - TARGET_UTILIZATION : TARGET_UTILIZATION;
        int256 err = (utilization - TARGET_UTILIZATION) * WAD / normalizer;

        int256 start = rateAtTarget[id];
        int256 avg;
        int256 end;
        if (start == 0) {
            avg = INITIAL_RATE_AT_TARGET;
            end = INITIAL_RATE_AT_TARGET;
        } else {
            int256 speed = ADJUSTMENT_SPEED * err / WAD;
            int256 elapsed = int256(block.timestamp - market.lastUpdate);
            int256 adaptation = speed * elapsed;
            if (adaptation == 0) {
                avg = start;
                end = start;
            } else {
                end = _adapted(start, adaptation);
                int256 mid = _adapted(start, adaptation / 2);
                avg = (start + end + 2 * mid) / 4;
            }
        }
        return (uint256(_curve(avg, err)), end);
    }

    function _curve(int256 atTarget, int256 err) internal pure returns (int256) {
        int256 coeff = err < 0 ? WAD - WAD * WAD / CURVE_STEEPNESS : CURVE_STEEPNESS - WAD;
        return (coeff * err / WAD + WAD) * atTarget / WAD;
    }

    function _adapted(int256 start, int256 adaptation) internal pure returns (int256) {
        int256 value = start * _exp(adaptation) / WAD;
        if (value < MIN_RATE_AT_TARGET) return MIN_RATE_AT_TARGET;
        if (value > MAX_RATE_AT_TARGET) return MAX_RATE_AT_TARGET;
        return value;
    }

    /// @dev exp(x) for x in WAD: x = q ln2 + r with |r| <= ln2 / 2, exp(r) ~ 1 + r + r^2 / 2, times 2^q.
    function _exp(int256 x) internal pure returns (int256) {
        if (x < LN_WEI) return 0;
        if (x >= EXP_UPPER_BOUND) return EXP_UPPER_VALUE;
        int256 half = x < 0 ? -(LN_2 / 2) : LN_2 / 2;
        int256 q = (x + half) / LN_2;
        int256 r = x - q * LN_2;
        int256 expR = WAD + r + r * r / WAD / 2;
        return q >= 0 ? expR << uint256(q) : expR >> uint256(-q);
    }
}
