"""Exceptions raised by bondfolio.

Every exception derives from :class:`BondfolioError` and, where one fits, from the matching built-in
(``ValueError`` for bad input, ``RuntimeError`` for solver trouble), in the manner of web3.py. Messages
name the subject and its id, say what was observed, what is allowed, and how to fix it.

The command line maps them to exit codes (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "EXIT_CODES",
    "BondfolioError",
    "ChainError",
    "CheckFailedError",
    "ConstraintCompileError",
    "InfeasibleError",
    "InputError",
    "MarketError",
    "SolverError",
    "UnboundedError",
    "exit_code_for",
]


class BondfolioError(Exception):
    """Base class of every error bondfolio raises on purpose."""


class InputError(BondfolioError, ValueError):
    """Input files or models are invalid: a field, an id, a dimension or a reference is wrong.

    Parameters
    ----------
    problems
        One message per problem found. All problems found in one pass are reported together, so a
        user fixes a file once rather than once per error.
    source
        The file or model the problems were found in (for the message only).
    """

    def __init__(self, problems: str | Sequence[str], source: str | None = None) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = head + self.problems[0]
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{head}{len(self.problems)} problems:\n{lines}"
        super().__init__(message)

    @classmethod
    def collect(cls, problems: Iterable[str], source: str | None = None) -> None:
        """Raise one :class:`InputError` carrying every problem, if there is any."""
        found = list(problems)
        if found:
            raise cls(found, source)


class InfeasibleError(BondfolioError, ValueError):
    """No allocation satisfies the policy's constraints together.

    ``policy`` names the policy; ``diagnosis`` carries whatever explanation was computed (a list of
    conflicting constraints and relaxations, when available).
    """

    def __init__(self, message: str, policy: str | None = None, diagnosis: object = None) -> None:
        super().__init__(message)
        self.policy = policy
        self.diagnosis = diagnosis


class SolverError(BondfolioError, RuntimeError):
    """Every solver in the fallback order failed to produce a verified allocation.

    ``attempts`` lists, in order, each solver tried and what it returned.
    """

    def __init__(self, message: str, attempts: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class UnboundedError(SolverError):
    """The objective can grow without limit: the policy leaves some position unbounded."""


class CheckFailedError(SolverError):
    """A solver claimed success but the independent numpy check found a violated constraint."""


class ConstraintCompileError(SolverError, TypeError):
    """A constraint family compiled to a row that is not DCP (disciplined convex), so no convex solver
    can take the program: a defect of the family's formulation, named by its label and row."""


class ChainError(BondfolioError, ConnectionError):
    """Reading the chain failed: the node did not answer, answered badly, or changed under us (after
    bounded retries). Carries no credentials: RPC URLs are redacted before they reach a message."""


class MarketError(InputError):
    """A market named in MARKETS.toml cannot be read as the protocol it claims (no code at the
    address, unknown market id, wrong chain)."""


#: Exit codes of the command line, by error class (first match in method resolution order wins).
EXIT_CODES: dict[type[BaseException], int] = {
    InputError: 2,
    InfeasibleError: 3,
    SolverError: 4,
    ChainError: 6,
}


def exit_code_for(exc: BaseException) -> int:
    """The command-line exit code for ``exc`` (1 for anything unexpected)."""
    for klass in type(exc).__mro__:
        if klass in EXIT_CODES:
            return EXIT_CODES[klass]
    return 1
