"""Hydraulic network kernel: Newton iteration on loop flows.

Each edge e carries a pressure drop (from-node minus to-node)

    dp_e(Q) = a_e r_e Q + b_e Q|Q| - head_e + [Q < 0] bcv_e Q|Q|

with ``r_e`` the viscosity ratio of the edge's coolant to the fit's reference, ``head_e``
the pump head (``s^2 H0``, zero for passive edges) and ``bcv_e`` a check valve's reverse
resistance. Edge flows are ``Q = B^T q`` with ``B`` a loop (cycle) basis, so continuity
holds exactly at every iterate; Newton drives the loop sums ``B dp(Q)`` to zero
(the loop method of Cross, 1936 [CROSS36], solved simultaneously: e.g. Boulos, Lansey & Karney,
*Comprehensive Water Distribution Systems Analysis Handbook*, ch. 4).

Kernels take arrays and scalars only.
"""
import numpy as np
from .dispatch import kernel

# Floor on dp'(Q) so the Jacobian stays positive definite at zero flow [Pa s/m3].
MIN_SLOPE = 1.0e3


@kernel(cache=True,
        aot="UniTuple(f8[::1], 2)(f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1])")
def edge_dp(q, a, r, b, head, bcv):
    """Pressure drop of every edge and its derivative with respect to flow."""
    n = q.shape[0]
    dp = np.empty(n)
    slope = np.empty(n)
    for e in range(n):
        qe = q[e]
        aq = abs(qe)
        dp[e] = a[e] * r[e] * qe + b[e] * qe * aq - head[e]
        s = a[e] * r[e] + 2.0 * b[e] * aq
        if qe < 0.0:
            dp[e] += bcv[e] * qe * aq
            s += 2.0 * bcv[e] * aq
        slope[e] = s if s > MIN_SLOPE else MIN_SLOPE
    return dp, slope


@kernel(cache=True)
def _edge_flows(ptr, loops, signs, q_loop, n_edge):
    q = np.zeros(n_edge)
    for e in range(n_edge):
        acc = 0.0
        for j in range(ptr[e], ptr[e + 1]):
            acc += signs[j] * q_loop[loops[j]]
        q[e] = acc
    return q


@kernel(cache=True)
def _loop_sums(ptr, loops, signs, dp, n_loop):
    res = np.zeros(n_loop)
    for e in range(dp.shape[0]):
        for j in range(ptr[e], ptr[e + 1]):
            res[loops[j]] += signs[j] * dp[e]
    return res


@kernel(cache=True)
def _norms(v):
    """(2-norm, max-norm) of a vector, written out (numba's array reductions cost a
    second of compile time each)."""
    ss = 0.0
    mx = 0.0
    for i in range(v.shape[0]):
        ss += v[i] * v[i]
        mx = max(mx, abs(v[i]))
    return np.sqrt(ss), mx


@kernel(cache=True)
def _lu_solve(m, rhs, out, cols):
    """Solve ``m x = rhs`` into ``out`` by Gaussian elimination with partial pivoting
    (Golub & Van Loan, Matrix Computations, 4th ed., algorithm 3.4.1); ``m`` is
    overwritten, ``cols`` (n integers) is scratch. Written out rather than
    ``np.linalg.solve``: the same arithmetic for a 55 x 55 system, without the ~9 s that
    compiling numba's LAPACK binding adds to every first run (docs/performance.md). A
    singular matrix gives non-finite entries, which the caller's residual test rejects.

    The loop Jacobian is sparse (3 % of a row of 8 racks' 434 x 434, 16 % of one rack's
    55 x 55) and stays so under elimination: each pivot row's non-zero columns are listed
    once and only rows with a non-zero in the pivot column are updated, over those
    columns only. The skipped operations are subtractions of exact zeros, so the factors
    and the solution are bit for bit those of the dense loops (docs/performance.md)."""
    n = rhs.shape[0]
    for i in range(n):
        out[i] = rhs[i]
    for k in range(n):
        piv = k
        big = abs(m[k, k])
        for i in range(k + 1, n):
            if abs(m[i, k]) > big:
                big = abs(m[i, k])
                piv = i
        if piv != k:
            for j in range(n):
                t = m[k, j]
                m[k, j] = m[piv, j]
                m[piv, j] = t
            t = out[k]
            out[k] = out[piv]
            out[piv] = t
        d = m[k, k]
        nc = 0
        for j in range(k + 1, n):
            if m[k, j] != 0.0:
                cols[nc] = j
                nc += 1
        for i in range(k + 1, n):
            if m[i, k] != 0.0:
                f = m[i, k] / d
                for c in range(nc):
                    j = cols[c]
                    m[i, j] -= f * m[k, j]
                out[i] -= f * out[k]
    for i in range(n - 1, -1, -1):
        acc = out[i]
        for j in range(i + 1, n):
            acc -= m[i, j] * out[j]
        out[i] = acc / m[i, i]


@kernel(cache=True,
        aot=(
            "Tuple((f8[::1], i8, f8))(i8[::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], "
            "f8[::1], f8[::1], f8, i8)"))
def solve_network(ptr, loops, signs, q_loop, a, r, b, head, bcv, tol_pa, max_iter):
    """Solve loop flows in place. Returns (edge flows [m3/s], iterations, residual [Pa]).

    The loop basis is given by edge in compressed form: edge ``e`` belongs to loops
    ``loops[ptr[e]:ptr[e+1]]`` with orientation ``signs`` (+1 along, -1 against), so the
    Jacobian ``B diag(dp') B^T`` is assembled from each edge's loop pairs rather than by
    dense products. The step is damped by backtracking until the loop residual norm falls
    (Armijo), which makes the iteration converge from a cold start on these monotone
    networks.
    """
    n_loop = q_loop.shape[0]
    n_edge = a.shape[0]
    q = _edge_flows(ptr, loops, signs, q_loop, n_edge)
    dp, slope = edge_dp(q, a, r, b, head, bcv)
    res = _loop_sums(ptr, loops, signs, dp, n_loop)
    norm, res_max = _norms(res)
    it = 0
    jac = np.empty((n_loop, n_loop))
    step = np.empty(n_loop)
    cols = np.empty(n_loop, dtype=np.int64)
    while it < max_iter and n_loop > 0 and res_max > tol_pa:
        for i in range(n_loop):  # (loops, not slice assignment: compile time)
            for j in range(n_loop):
                jac[i, j] = 0.0
        for e in range(n_edge):
            for i in range(ptr[e], ptr[e + 1]):
                li, si = loops[i], signs[i] * slope[e]
                for j in range(ptr[e], ptr[e + 1]):
                    jac[li, loops[j]] += si * signs[j]
        _lu_solve(jac, res, step, cols)
        lam = 1.0
        while True:
            q_try = q_loop - lam * step
            q = _edge_flows(ptr, loops, signs, q_try, n_edge)
            dp, slope = edge_dp(q, a, r, b, head, bcv)
            res_try = _loop_sums(ptr, loops, signs, dp, n_loop)
            norm_try, max_try = _norms(res_try)
            if norm_try < (1.0 - 1e-4 * lam) * norm or lam < 1e-6:
                break
            lam *= 0.5
        for i in range(n_loop):
            q_loop[i] = q_try[i]
        res = res_try
        norm = norm_try
        res_max = max_try
        it += 1
    return q, it, res_max if n_loop > 0 else 0.0


@kernel(cache=True,
        aot="f8[::1](i8, i8[::1], i8[::1], i8[::1], i8[::1], f8[::1], f8)")
def node_pressures(n_nodes, tree_order, tree_edge, tree_parent, edge_from, dp, ref_pressure):
    """Node pressures by walking the spanning tree from the reference node (tree_order[0])."""
    p = np.zeros(n_nodes)
    p[tree_order[0]] = ref_pressure
    for i in range(1, tree_order.shape[0]):
        node = tree_order[i]
        e = tree_edge[node]
        parent = tree_parent[node]
        # dp[e] = p[from] - p[to]
        if edge_from[e] == parent:
            p[node] = p[parent] - dp[e]
        else:
            p[node] = p[parent] + dp[e]
    return p
