// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title PendleERC4626SY: bondfolio's own EIP-5115 standardized-yield token over an ERC-4626 vault.
/// @notice npm `@pendle/core-v2` ships the real market, yield-contract factory, PT, YT and router, but no SY
///         implementation (its `core/StandardizedYield` holds only PYIndex and SYUtils). This contract is
///         written by the bondfolio project with Pendle's `IStandardizedYield` interface and the semantics the
///         real contracts rely on: one SY is one vault share; `exchangeRate()` is the vault's assets per 1e18
///         shares (`convertToAssets(1e18)`), which the YT turns into the PY index; `redeem` with
///         `burnFromInternalBalance` burns what the router sent to this contract first; tokens in and out are
///         the vault's asset (deposited into or redeemed from the vault) and the vault share (1:1). No rewards.
contract PendleERC4626SY is ERC20 {
    using SafeERC20 for IERC20;

    enum AssetType {
        TOKEN,
        LIQUIDITY
    }

    event Deposit(
        address indexed caller, address indexed receiver, address indexed tokenIn, uint256 amountDeposited, uint256 amountSyOut
    );
    event Redeem(
        address indexed caller, address indexed receiver, address indexed tokenOut, uint256 amountSyToRedeem, uint256 amountTokenOut
    );

    /// @notice The ERC-4626 vault share: one SY is one share.
    address public immutable yieldToken;
    address public immutable asset;

    constructor(string memory name_, string memory symbol_, address vault) ERC20(name_, symbol_) {
        yieldToken = vault;
        asset = IERC4626(vault).asset();
        IERC20(asset).forceApprove(vault, type(uint256).max);
    }

    function decimals() public view override returns (uint8) {
        return IERC20Metadata(yieldToken).decimals();
    }

    function deposit(address receiver, address tokenIn, uint256 amountTokenToDeposit, uint256 minSharesOut)
        external
        payable
        returns (uint256 amountSharesOut)
    {
        require(msg.value == 0, "SY: no native");
        require(amountTokenToDeposit != 0, "SY: zero deposit");
        IERC20(tokenIn).safeTransferFrom(msg.sender, address(this), amountTokenToDeposit);
        if (tokenIn == yieldToken) amountSharesOut = amountTokenToDeposit;
        else if (tokenIn == asset) amountSharesOut = IERC4626(yieldToken).deposit(amountTokenToDeposit, address(this));
        else revert("SY: invalid tokenIn");
        require(amountSharesOut >= minSharesOut, "SY: insufficient out");
        _mint(receiver, amountSharesOut);
        emit Deposit(msg.sender, receiver, tokenIn, amountTokenToDeposit, amountSharesOut);
    }

    function redeem(
        address receiver,
        uint256 amountSharesToRedeem,
        address tokenOut,
        uint256 minTokenOut,
        bool burnFromInternalBalance
    ) external returns (uint256 amountTokenOut) {
        require(amountSharesToRedeem != 0, "SY: zero redeem");
        _burn(burnFromInternalBalance ? address(this) : msg.sender, amountSharesToRedeem);
        if (tokenOut == yieldToken) {
            amountTokenOut = amountSharesToRedeem;
            IERC20(yieldToken).safeTransfer(receiver, amountTokenOut);
        } else if (tokenOut == asset) {
            amountTokenOut = IERC4626(yieldToken).redeem(amountSharesToRedeem, receiver, address(this));
        } else {
            revert("SY: invalid tokenOut");
        }
        require(amountTokenOut >= minTokenOut, "SY: insufficient out");
        emit Redeem(msg.sender, receiver, tokenOut, amountSharesToRedeem, amountTokenOut);
    }

    function exchangeRate() external view returns (uint256) {
        return IERC4626(yieldToken).convertToAssets(1e18);
    }

    function claimRewards(address) external pure returns (uint256[] memory r) {
        r = new uint256[](0);
    }

    function accruedRewards(address) external pure returns (uint256[] memory r) {
        r = new uint256[](0);
    }

    function rewardIndexesCurrent() external pure returns (uint256[] memory r) {
        r = new uint256[](0);
    }

    function rewardIndexesStored() external pure returns (uint256[] memory r) {
        r = new uint256[](0);
    }

    function getRewardTokens() external pure returns (address[] memory r) {
        r = new address[](0);
    }

    function getTokensIn() external view returns (address[] memory r) {
        r = new address[](2);
        (r[0], r[1]) = (asset, yieldToken);
    }

    function getTokensOut() external view returns (address[] memory r) {
        r = new address[](2);
        (r[0], r[1]) = (asset, yieldToken);
    }

    function isValidTokenIn(address token) external view returns (bool) {
        return token == asset || token == yieldToken;
    }

    function isValidTokenOut(address token) external view returns (bool) {
        return token == asset || token == yieldToken;
    }

    function previewDeposit(address tokenIn, uint256 amount) external view returns (uint256) {
        if (tokenIn == yieldToken) return amount;
        if (tokenIn == asset) return IERC4626(yieldToken).previewDeposit(amount);
        revert("SY: invalid tokenIn");
    }

    function previewRedeem(address tokenOut, uint256 amount) external view returns (uint256) {
        if (tokenOut == yieldToken) return amount;
        if (tokenOut == asset) return IERC4626(yieldToken).previewRedeem(amount);
        revert("SY: invalid tokenOut");
    }

    function assetInfo() external view returns (AssetType, address, uint8) {
        return (AssetType.TOKEN, asset, IERC20Metadata(asset).decimals());
    }
}
