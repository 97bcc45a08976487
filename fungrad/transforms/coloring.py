"""Graph colorings that compress a sparse derivative into a few dense passes.

A Jacobian pattern is given as CSR index arrays (`indptr`, `indices`) of an
m x n boolean matrix.

- `column_coloring`: columns that share no row get one color (a distance-2
  coloring of the bipartite graph, i.e. a distance-1 coloring of the column
  intersection graph).  One jvp per color with the seed "1 on every column of
  this color" gives, in row i, the one entry of that color: direct recovery.
- `row_coloring`: the same on the transpose, for vjps.
- `star_coloring`: for a symmetric (Hessian) pattern, a distance-1 coloring in
  which every path on four vertices uses at least three colors (Gebremedhin,
  Manne and Pothen, "What color is your Jacobian?", SIAM Review 2005, Alg. 4.1).
  Each entry h_ij is then recovered from H S directly, from row i or from row j
  (`symmetric_recovery`), usually with far fewer colors than a column coloring.

Colorings are greedy in an order: "largest_first" (descending degree, the
default), "smallest_last" (repeatedly remove a vertex of least remaining degree,
color in reverse removal order) or "natural".  Pure NumPy and Python: no fungrad
imports, so the layer is only for placement.
"""
from __future__ import annotations

import numpy as np

__all__ = ["column_coloring", "row_coloring", "star_coloring", "intersection_graph", "clique_bound",
           "symmetric_recovery", "transpose_csr", "ORDERS"]

ORDERS = ("largest_first", "smallest_last", "natural")

# column intersection graphs with more (column, column) pairs than this are not
# built: the coloring is then the trivial one (every column its own color)
_PAIR_BUDGET = 50_000_000


def transpose_csr(indptr: np.ndarray, indices: np.ndarray, n_cols: int):
    """(indptr, indices) of the transposed pattern (rows sorted within columns)."""
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    order = np.argsort(indices, kind="stable")
    t_indices = rows[order]
    t_indptr = np.zeros(n_cols + 1, np.int64)
    np.cumsum(np.bincount(indices, minlength=n_cols), out=t_indptr[1:])
    return t_indptr, t_indices


def intersection_graph(indptr: np.ndarray, indices: np.ndarray, n_cols: int):
    """Adjacency (indptr, indices) of the column intersection graph: columns j != k
    are adjacent when some row holds both.  None when it would exceed the budget."""
    deg = np.diff(indptr)
    if int((deg.astype(np.int64) ** 2).sum()) > _PAIR_BUDGET:
        return None
    row_of = np.repeat(np.arange(len(deg), dtype=np.int64), deg)
    counts = deg[row_of]
    a = np.repeat(indices, counts)
    starts = indptr[row_of]
    total = int(counts.sum())
    ends = np.cumsum(counts)
    b = indices[np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts)]
    keep = a != b
    keys = a[keep] * n_cols + b[keep]
    keys.sort(kind="stable")
    if keys.size > 1:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    starts = np.arange(n_cols + 1, dtype=np.int64) * n_cols
    adj_ptr = np.searchsorted(keys, starts)
    return adj_ptr, keys - np.repeat(starts[:-1], np.diff(adj_ptr))


def _modular(indptr: np.ndarray, indices: np.ndarray, lower: int, tries: int = 3):
    """`column % w` for the smallest w in lower .. lower + tries - 1 that colors the
    columns validly (no row holds two columns of one color), or None.  Banded and
    stencil patterns get an optimal coloring this way in a few vectorised passes,
    without building the intersection graph."""
    m = len(indptr) - 1
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))
    for w in range(max(lower, 1), max(lower, 1) + tries):
        colors = indices % w
        if np.bincount(rows * w + colors, minlength=m * w).max(initial=0) <= 1:
            return w
    return None


def _order(adj_ptr: np.ndarray, adj: np.ndarray, order: str) -> list[int]:
    n = len(adj_ptr) - 1
    deg = np.diff(adj_ptr)
    if order == "natural":
        return list(range(n))
    if order == "largest_first":
        return np.argsort(-deg, kind="stable").tolist()
    if order == "smallest_last":
        return _smallest_last(adj_ptr.tolist(), adj.tolist(), deg.tolist())
    raise ValueError(f"coloring order must be one of {ORDERS}, got {order!r}")


def _smallest_last(ptr: list, adj: list, deg: list) -> list[int]:
    n = len(deg)
    buckets: list[set] = [set() for _ in range(max(deg, default=0) + 1)]
    for v, d in enumerate(deg):
        buckets[d].add(v)
    removed = [False] * n
    current = list(deg)
    out = []
    low = 0
    for _ in range(n):
        low = max(low - 1, 0)
        while not buckets[low]:
            low += 1
        v = buckets[low].pop()
        removed[v] = True
        out.append(v)
        for w in adj[ptr[v]:ptr[v + 1]]:
            if not removed[w]:
                buckets[current[w]].discard(w)
                current[w] -= 1
                buckets[current[w]].add(w)
    out.reverse()
    return out


def _greedy(adj_ptr: np.ndarray, adj: np.ndarray, order: str) -> np.ndarray:
    """First-fit distance-1 coloring of a graph in the given vertex order."""
    n = len(adj_ptr) - 1
    ptr, nbrs = adj_ptr.tolist(), adj.tolist()
    colors = [-1] * n
    for v in _order(adj_ptr, adj, order):
        used = {colors[w] for w in nbrs[ptr[v]:ptr[v + 1]]}
        c = 0
        while c in used:
            c += 1
        colors[v] = c
    return np.asarray(colors, dtype=np.int64)


def column_coloring(indptr: np.ndarray, indices: np.ndarray, n_cols: int,
                    order: str = "largest_first") -> np.ndarray:
    """A color per column such that no two columns of one color share a row.

    The largest number of entries in a row is a lower bound on the number of
    colors; a modular coloring that reaches it is optimal and is taken at once."""
    lower = int(np.diff(indptr).max(initial=0))
    w = _modular(indptr, indices, lower, tries=1)
    if w is not None:
        return np.arange(n_cols, dtype=np.int64) % w
    graph = intersection_graph(indptr, indices, n_cols)
    if graph is None:
        return np.arange(n_cols, dtype=np.int64)
    return _greedy(*graph, order)


def row_coloring(indptr: np.ndarray, indices: np.ndarray, n_cols: int,
                 order: str = "largest_first") -> np.ndarray:
    """A color per row such that no two rows of one color share a column."""
    t_indptr, t_indices = transpose_csr(indptr, indices, n_cols)
    return column_coloring(t_indptr, t_indices, len(indptr) - 1, order)


def star_coloring(indptr: np.ndarray, indices: np.ndarray, order: str = "largest_first"):
    """A star coloring of the adjacency graph of a symmetric n x n pattern (the
    diagonal is ignored): distance-1, and no path on four vertices is bicolored."""
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    off = rows != indices
    adj_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows[off], minlength=n), out=adj_ptr[1:])
    adj = indices[off]
    ptr, nbrs = adj_ptr.tolist(), adj.tolist()
    colors = [-1] * n
    # count[x][c]: how many colored neighbours of x have color c
    count: list[dict] = [dict() for _ in range(n)]
    for v in _order(adj_ptr, adj, order):
        forbidden = set()
        nv = nbrs[ptr[v]:ptr[v + 1]]
        for w in nv:
            cw = colors[w]
            if cw >= 0:
                forbidden.add(cw)
        for w in nv:
            cw = colors[w]
            for x in nbrs[ptr[w]:ptr[w + 1]]:
                cx = colors[x]
                if x == v or cx < 0:
                    continue
                if cw < 0:
                    # v - w - x through an uncolored w: v may not take x's color
                    forbidden.add(cx)
                elif count[x].get(cw, 0) > 1:
                    # x has a neighbour other than w colored like w: v - w - x - y
                    # would be a bicolored path if v took x's color
                    forbidden.add(cx)
        c = 0
        while c in forbidden:
            c += 1
        colors[v] = c
        for w in nv:
            cnt = count[w]
            cnt[c] = cnt.get(c, 0) + 1
    return np.asarray(colors, dtype=np.int64)


def clique_bound(indptr: np.ndarray, indices: np.ndarray) -> int:
    """A lower bound on the colors of any distance-1 (so any star) coloring of a
    symmetric pattern: the size of the largest row of the fullest rows whose
    vertices (with the row's own) are pairwise adjacent (a clique), else 1."""
    n = len(indptr) - 1
    if n == 0:
        return 0
    counts = np.diff(indptr)
    best = 1
    for r in np.argsort(-counts, kind="stable")[:8].tolist():
        members = np.union1d(indices[indptr[r]:indptr[r + 1]], [r])
        if members.size <= best:
            break
        if all(np.isin(members, np.union1d(indices[indptr[k]:indptr[k + 1]], [k]),
                       assume_unique=True).all() for k in members.tolist()):
            best = members.size
    return best


def symmetric_recovery(indptr: np.ndarray, indices: np.ndarray, colors: np.ndarray):
    """For each stored entry (i, j) of a symmetric pattern, the position in the
    compressed product B = H S (B[r, c] stored at c * n + r) that equals h_ij:
    B[i, color j] when j is the only column of its color in row i, else
    B[j, color i].  Raises if neither holds (the coloring is not a star coloring)."""
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    n_colors = int(colors.max(initial=-1)) + 1
    row_color = rows * n_colors + colors[indices]
    per_row_color = np.bincount(row_color, minlength=n * n_colors)
    direct = per_row_color[row_color] == 1
    other = indices * n_colors + colors[rows]
    mirrored = per_row_color[other] == 1
    if not np.all(direct | mirrored):
        raise AssertionError("symmetric_recovery: the coloring does not allow direct "
                             "recovery of every entry (not a star coloring)")
    return np.where(direct, colors[indices] * n + rows, colors[rows] * n + indices)
