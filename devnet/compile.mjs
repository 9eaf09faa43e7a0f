// Compile the devnet contracts with solcjs from npm and write devnet/build/<Contract>.json.
//   node devnet/compile.mjs
// - the project's own contracts (devnet/contracts/*.sol) with solc 0.8.24 (OpenZeppelin 5 needs >= 0.8.20);
// - Aave's v3.1+ DefaultReserveInterestRateStrategyV2 from npm @aave-dao/aave-v3-origin with solc 0.8.27;
// - Morpho Blue and its mocks from the npm source (@morpho-org/morpho-blue) with solc 0.8.19, via-IR.
// The outputs are committed, so tests and the devnet example never compile (via-IR takes ~20 s).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const nodeModules = path.join(root, "node_modules");
const buildDir = path.join(here, "build");

function findImports(importPath) {
  for (const base of [nodeModules, path.join(here, "contracts")]) {
    const full = path.join(base, importPath);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `not found: ${importPath}` };
}

function compile(solc, sources, settings, wanted) {
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(Object.entries(sources).map(([name, file]) => [name, { content: fs.readFileSync(file, "utf8") }])),
    settings: { ...settings, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"] } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    process.exit(1);
  }
  for (const [file, contracts] of Object.entries(output.contracts)) {
    for (const [name, c] of Object.entries(contracts)) {
      if (!wanted.includes(name)) continue;
      const artifact = {
        contractName: name,
        sourceName: file,
        compiler: solc.version(),
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        linkReferences: c.evm.bytecode.linkReferences,
      };
      fs.writeFileSync(path.join(buildDir, `${name}.json`), JSON.stringify(artifact, null, 1) + "\n");
      console.log(`${name}: ${c.evm.bytecode.object.length / 2} bytes (${solc.version()})`);
    }
  }
}

fs.mkdirSync(buildDir, { recursive: true });

const own = fs.readdirSync(path.join(here, "contracts")).filter((f) => f.endsWith(".sol"));
compile(
  require("solc"),
  Object.fromEntries(own.map((f) => [f, path.join(here, "contracts", f)])),
  { optimizer: { enabled: true, runs: 200 }, evmVersion: "paris" },
  ["Multicall3", "TestToken", "TestVault", "CometRates", "PendleERC4626SY", "PendleGaugeStub",
   "AdaptiveCurveIrm", "MetaMorphoVault"],
);

// Aave v3.1+ interest-rate strategy (one contract for all reserves), from npm @aave-dao/aave-v3-origin
const origin = "@aave-dao/aave-v3-origin/src/contracts/misc/DefaultReserveInterestRateStrategyV2.sol";
compile(
  require("solc0827"), // Aave v3.6 uses require(bool, CustomError()), new in solc 0.8.27's legacy pipeline
  { [origin]: path.join(nodeModules, origin) },
  { optimizer: { enabled: true, runs: 200 }, evmVersion: "paris" },
  ["DefaultReserveInterestRateStrategyV2"],
);

const morpho = path.join(nodeModules, "@morpho-org", "morpho-blue", "src");
compile(
  require("solc019"),
  {
    "@morpho-org/morpho-blue/src/Morpho.sol": path.join(morpho, "Morpho.sol"),
    "@morpho-org/morpho-blue/src/mocks/OracleMock.sol": path.join(morpho, "mocks", "OracleMock.sol"),
    "@morpho-org/morpho-blue/src/mocks/ERC20Mock.sol": path.join(morpho, "mocks", "ERC20Mock.sol"),
  },
  { optimizer: { enabled: true, runs: 999999 }, viaIR: true, evmVersion: "paris" },
  ["Morpho", "OracleMock", "ERC20Mock"],
);
