"""Protocol readers turning chain state, read at one pinned block, into snapshot inputs.

One module per protocol; readers import from :mod:`bondfolio.inputs` only, never from the solver.
"""
