"""From decision to transactions: execution plans, Safe batches, and (as it comes) the rebalance gate.

Consumers of decision records, like the audit layer: nothing in :mod:`bondfolio.solver` imports this
package. Read-only: it never holds a key and never sends a transaction.
"""

from bondfolio.execution.plan import Plan, build_plan, load_plan

__all__ = ["Plan", "build_plan", "load_plan"]
