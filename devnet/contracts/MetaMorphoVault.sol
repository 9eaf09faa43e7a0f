// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

struct MarketParams {
    address loanToken;
    address collateralToken;
    address oracle;
    address irm;
    uint256 lltv;
}

interface IMorphoLike {
    function market(bytes32 id) external view returns (uint128, uint128, uint128, uint128, uint128, uint128);
    function position(bytes32 id, address user) external view returns (uint256, uint128, uint128);
    function idToMarketParams(bytes32 id) external view returns (address, address, address, address, uint256);
    function supply(MarketParams memory params, uint256 assets, uint256 shares, address onBehalf, bytes memory data)
        external returns (uint256, uint256);
    function withdraw(MarketParams memory params, uint256 assets, uint256 shares, address onBehalf, address receiver)
        external returns (uint256, uint256);
}

/// @title MetaMorphoVault: bondfolio's own contract with MetaMorpho's read ABI and allocation rules.
/// @notice MetaMorpho's source is not published in the package registries (npm @morpho-org/metamorpho ships
///         no contracts), so the bondfolio project wrote this vault for the reader's tests. It keeps
///         MetaMorpho's view functions and types: `MORPHO()`, `config(id) -> (uint184 cap, bool enabled,
///         uint64 removableAt)`, `supplyQueue(i)`, `supplyQueueLength()`, `withdrawQueue(i)`,
///         `withdrawQueueLength()`, `fee()`, over an OpenZeppelin ERC-4626. Deposits go to the supply queue's
///         markets in order, each up to its cap; withdrawals come from idle assets, then the withdraw queue
///         in order. totalAssets = idle + the vault's supply in each market at Morpho's last accrual
///         (MetaMorpho also adds interest pending since then; here `Morpho.accrueInterest` brings it in).
///         Caps are set directly by the owner (MetaMorpho applies a timelock), and there is no fee accrual.
contract MetaMorphoVault is ERC4626 {
    struct MarketConfig {
        uint184 cap;
        bool enabled;
        uint64 removableAt;
    }

    uint256 internal constant VIRTUAL_SHARES = 1e6;
    uint256 internal constant VIRTUAL_ASSETS = 1;

    address public immutable MORPHO;
    address public immutable owner;
    uint96 public fee;
    mapping(bytes32 => MarketConfig) public config;
    bytes32[] public supplyQueue;
    bytes32[] public withdrawQueue;

    constructor(address morpho, IERC20 asset_, string memory name_, string memory symbol_)
        ERC20(name_, symbol_)
        ERC4626(asset_)
    {
        MORPHO = morpho;
        owner = msg.sender;
        asset_.approve(morpho, type(uint256).max);
    }

    function supplyQueueLength() external view returns (uint256) {
        return supplyQueue.length;
    }

    function withdrawQueueLength() external view returns (uint256) {
        return withdrawQueue.length;
    }

    /// @notice Owner: set a market's cap (enabling it and appending it to both queues the first time).
    function setCap(bytes32 id, uint184 cap) external {
        require(msg.sender == owner, "not owner");
        if (!config[id].enabled) {
            config[id].enabled = true;
            supplyQueue.push(id);
            withdrawQueue.push(id);
        }
        config[id].cap = cap;
    }

    function totalAssets() public view override returns (uint256 assets) {
        assets = IERC20(asset()).balanceOf(address(this));
        for (uint256 i = 0; i < withdrawQueue.length; i++) {
            assets += _supplied(withdrawQueue[i]);
        }
    }

    function _supplied(bytes32 id) internal view returns (uint256) {
        (uint256 shares,,) = IMorphoLike(MORPHO).position(id, address(this));
        (uint128 totalAssets_, uint128 totalShares,,,,) = IMorphoLike(MORPHO).market(id);
        return shares * (uint256(totalAssets_) + VIRTUAL_ASSETS) / (uint256(totalShares) + VIRTUAL_SHARES);
    }

    function _params(bytes32 id) internal view returns (MarketParams memory p) {
        (p.loanToken, p.collateralToken, p.oracle, p.irm, p.lltv) = IMorphoLike(MORPHO).idToMarketParams(id);
    }

    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override {
        super._deposit(caller, receiver, assets, shares);
        uint256 left = assets;
        for (uint256 i = 0; i < supplyQueue.length && left > 0; i++) {
            bytes32 id = supplyQueue[i];
            uint256 supplied = _supplied(id);
            uint256 cap = config[id].cap;
            if (supplied >= cap) continue;
            uint256 amount = cap - supplied < left ? cap - supplied : left;
            IMorphoLike(MORPHO).supply(_params(id), amount, 0, address(this), "");
            left -= amount;
        }
    }

    function _withdraw(address caller, address receiver, address owner_, uint256 assets, uint256 shares)
        internal
        override
    {
        uint256 idle = IERC20(asset()).balanceOf(address(this));
        for (uint256 i = 0; i < withdrawQueue.length && idle < assets; i++) {
            bytes32 id = withdrawQueue[i];
            uint256 need = assets - idle;
            uint256 supplied = _supplied(id);
            uint256 amount = supplied < need ? supplied : need;
            if (amount == 0) continue;
            IMorphoLike(MORPHO).withdraw(_params(id), amount, 0, address(this), address(this));
            idle += amount;
        }
        super._withdraw(caller, receiver, owner_, assets, shares);
    }
}
