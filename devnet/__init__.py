"""Local chain tooling for tests and the devnet example: start anvil, deploy protocol contracts.

Not part of the product: this package sends transactions (to a local node only); ``bondfolio`` never
does. Everything it needs comes from the npm packages in ``package.json`` and from the compiled
artifacts committed under ``devnet/build/``.
"""
