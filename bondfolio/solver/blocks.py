"""The block structure of a program's rows, shared by the solution path and the block interior point.

Rows split into *local* rows, each within one small group of variables (a block: a weight with its
trade-size variable, its bounds and kink rows), and *coupling* rows (budget, factor definitions, group,
duration, liquidity, turnover rows). :mod:`bondfolio.solver.path` follows its breakpoints through
that split (:class:`~bondfolio.solver.path._BlockKkt`) and :mod:`bondfolio.solver.ipm` solves its
Newton systems through it. Opposite row pairs (a two-sided row with equal bounds, e.g. the budget) are
found here too: both methods solve such a pair as one equality row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module

if TYPE_CHECKING:
    import scipy.sparse as sp
else:
    sp = lazy_module("scipy.sparse", globals(), "sp")

__all__ = ["MAX_BLOCK", "MAX_BLOCK_ROWS", "MAX_COUPLING", "Blocks", "block_structure", "merge_opposite_rows",
           "opposite_pairs", "slots"]

#: Blocks of at most MAX_BLOCK variables and MAX_BLOCK_ROWS local rows, at most MAX_COUPLING coupling rows.
MAX_BLOCK = 6
MAX_BLOCK_ROWS = 8
MAX_COUPLING = 256


@dataclass
class Blocks:
    """A split of the rows into *local* rows, each within one small group of variables (a block:
    a weight with its trade-size variable, its bounds and kink rows), and *coupling* rows (the rest:
    budget, factor definitions, group, duration and liquidity rows). Rows are numbered Ae's first,
    then Ai's."""

    var: np.ndarray
    """(blocks, B): each block's variables, -1 padding."""
    row: np.ndarray
    """(blocks, L): each block's local rows, -1 padding."""
    coupling: np.ndarray
    """The coupling rows, ascending."""


def block_structure(H: Any, Ae: Any, Ai: Any) -> Blocks | None:
    """The block structure of the program with curvature ``H`` and rows ``Ae`` (equalities) and ``Ai``
    (inequalities) (see :class:`Blocks`), or None when it has none worth using:
    ``H`` couples more than :data:`MAX_BLOCK` variables, or more than :data:`MAX_COUPLING` rows
    would be coupling rows. Local rows are taken smallest first while every block stays within
    :data:`MAX_BLOCK` variables and :data:`MAX_BLOCK_ROWS` rows."""
    import scipy.sparse.csgraph as csgraph

    n = H.shape[0]
    A = sp.vstack([Ae, Ai]).tocsr()
    m = A.shape[0]
    Hoff = sp.triu(H, k=1).tocoo()
    Hoff = sp.coo_matrix((Hoff.data[Hoff.data != 0], (Hoff.row[Hoff.data != 0], Hoff.col[Hoff.data != 0])),
                         shape=(n, n))
    if Hoff.nnz > MAX_BLOCK * n:
        return None
    nnz = np.diff(A.indptr)
    small = np.flatnonzero((nnz >= 1) & (nnz <= MAX_BLOCK))
    # the fast case: every small row local (components of H's and those rows' graph all small)
    first = A.indices[A.indptr[small]]
    Ac = A[small].tocoo()
    edges = sp.coo_matrix((np.ones(Ac.nnz), (Ac.col, first[Ac.row])), shape=(n, n))
    graph = (edges + Hoff + sp.eye(n)).tocsr()
    _, label = csgraph.connected_components(graph, directed=False)
    sizes = np.bincount(label)
    rows_per = np.bincount(label[first], minlength=sizes.size)
    if sizes.max(initial=0) <= MAX_BLOCK and rows_per.max(initial=0) <= MAX_BLOCK_ROWS:
        local = small
    else:  # greedy: a row is local while its union stays small
        _, label = csgraph.connected_components((Hoff + sp.eye(n)).tocsr(), directed=False)
        parent = np.arange(label.max() + 1)
        size = np.bincount(label)
        count = np.zeros(parent.size, dtype=int)

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return int(i)

        if size.max(initial=0) > MAX_BLOCK:
            return None
        keep = []
        for r in small[np.argsort(nnz[small], kind="stable")]:
            roots = {find(int(label[c])) for c in A.indices[A.indptr[r]:A.indptr[r + 1]]}
            if sum(int(size[x]) for x in roots) > MAX_BLOCK or sum(int(count[x]) for x in roots) >= MAX_BLOCK_ROWS:
                continue
            top = roots.pop()
            for x in roots:
                parent[x] = top
                size[top] += size[x]
                count[top] += count[x]
            count[top] += 1
            keep.append(r)
        local = np.sort(np.asarray(keep, dtype=int))
        label = np.array([find(int(x)) for x in label])
        first = A.indices[A.indptr[local]]
    is_local = np.zeros(m, dtype=bool)
    is_local[local] = True
    coupling = np.flatnonzero(~is_local & (nnz > 0))
    if coupling.size > MAX_COUPLING:
        return None
    _, comp = np.unique(label, return_inverse=True)
    nb = int(comp.max(initial=-1)) + 1
    return Blocks(slots(comp, np.arange(n), nb), slots(comp[first], local, nb), coupling)


def slots(group: np.ndarray, items: np.ndarray, nb: int) -> np.ndarray:
    """``items`` laid out one row per group (ascending within a row), padded with -1."""
    order = np.lexsort((items, group))
    g, it = group[order], items[order]
    counts = np.bincount(g, minlength=nb)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(g.size) - start[g]
    out = np.full((nb, int(counts.max(initial=0))), -1, dtype=int)
    out[g, pos] = it
    return out


def opposite_pairs(Ai: Any, bi: np.ndarray, rows: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of rows with ``Ai_j = -Ai_i`` and ``bi_j = -bi_i`` (among ``rows`` if given)."""
    Ai = sp.csr_matrix(Ai)
    Ai.sort_indices()
    # a row's mirror has the opposite projection on any fixed vector (negation is exact), so only the
    # rows whose opposite projection and bound occur are compared exactly
    probe = 1.0 + np.sqrt(np.arange(Ai.shape[1], dtype=float) + 2.0) % 1.0
    idx = np.arange(Ai.shape[0]) if rows is None else np.asarray(rows, dtype=int)
    keys = list(zip((Ai @ probe)[idx].tolist(), bi[idx].tolist(), strict=True))
    present = set(keys)
    candidates = [int(i) for i, (h, b) in zip(idx.tolist(), keys, strict=True) if (-h, -b) in present]
    seen: dict[tuple[bytes, bytes, float], int] = {}
    pairs: list[tuple[int, int]] = []
    for i in candidates:
        lo, hi = Ai.indptr[i], Ai.indptr[i + 1]
        cols, vals = Ai.indices[lo:hi].tobytes(), Ai.data[lo:hi]
        mirror = (cols, (-vals).tobytes(), float(-bi[i]))
        if mirror in seen:
            pairs.append((seen.pop(mirror), i))
        else:
            seen[(cols, vals.tobytes(), float(bi[i]))] = i
    return pairs


def merge_opposite_rows(Ai: Any, bi: np.ndarray, Ae: Any, be: np.ndarray) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Pairs of inequality rows ``a x <= b`` and ``-a x <= -b`` (a two-sided row with equal bounds, e.g.
    the budget's ``invested = 1``) become one equality row: otherwise both are active and dependent."""
    Ai = sp.csr_matrix(Ai)
    pairs = opposite_pairs(Ai, bi)
    if not pairs:
        return Ai, bi, Ae, be
    first = [i for i, _ in pairs]
    drop = np.zeros(Ai.shape[0], dtype=bool)
    drop[[i for pair in pairs for i in pair]] = True
    Ae = sp.vstack([Ae, Ai[first]]).tocsr()
    be = np.concatenate([be, bi[first]])
    keep = np.flatnonzero(~drop)
    return Ai[keep], bi[keep], Ae, be
