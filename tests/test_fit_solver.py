"""The calibration's least-squares solver (twin.calibration.fit._solve) on problems whose
answers are known without the twin: an exponential decay fitted by scipy's own
least_squares to full convergence, a bound that holds the optimum, and an exactly
degenerate pair of parameters. Fast: no model runs.

Which wrong solver each would catch: a wrong step sign or scaling, a Broyden update that
drifts (test 1: the answer would not agree with scipy's to the stopping rule's 0.2
standard errors); a step that leaves the bounds or a bound that is not held (test 2); a
step along a direction the data do not resolve (test 3: the ridge would be walked to
wherever noise sends it, not left at the start's minimum-norm point); a Broyden update
that fills a sparse Jacobian's structure (test 4).
"""
import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.sparse import csc_matrix

from twin.calibration.fit import CONVERGED_SE, _broyden, _solve

T = np.linspace(0.0, 10.0, 400)


def _decay(x):  # y = a exp(-b t) + c, a and b fitted as logs (as the twin fits its scales)
    a, b, c = np.exp(x[0]), np.exp(x[1]), x[2]
    return a * np.exp(-b * T) + c


def _decay_jac(x):
    a, b = np.exp(x[0]), np.exp(x[1])
    e = np.exp(-b * T)
    return np.column_stack([a * e, -a * b * T * e, np.ones_like(T)])


class Counter:
    def __init__(self, fun):
        self.fun, self.n = fun, 0

    def __call__(self, x):
        self.n += 1
        return self.fun(x)


def test_a_nonlinear_fit_agrees_with_scipy_within_the_stopping_rule():
    rng = np.random.default_rng(3)
    sd = 0.05
    y = _decay(np.log([3.0, 0.7]).tolist() + [0.4]) + rng.normal(0.0, sd, T.size)
    fun = Counter(lambda x: (_decay(x) - y) / sd)
    lo, hi = np.array([-5.0, -5.0, -10.0]), np.array([5.0, 5.0, 10.0])
    sol = _solve(fun, lambda x, f: _decay_jac(x) / sd, np.zeros(3), lo, hi, 200, lambda: fun.n)
    ref = least_squares(lambda x: (_decay(x) - y) / sd, np.zeros(3), jac=lambda x: _decay_jac(x) / sd,
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert sol.success, sol.message
    J = _decay_jac(ref.x) / sd
    se = np.sqrt(np.diag(np.linalg.inv(J.T @ J)))
    assert np.all(np.abs(sol.x - ref.x) <= CONVERGED_SE * se), (sol.x, ref.x, se)
    assert fun.n < 30  # model runs: each costs seconds in a calibration


def test_a_bound_holds_the_optimum_the_data_would_put_beyond_it():
    sd = 0.05
    y = _decay(np.log([3.0, 0.7]).tolist() + [0.4])
    fun = Counter(lambda x: (_decay(x) - y) / sd)
    lo, hi = np.array([-5.0, -5.0, -10.0]), np.array([np.log(2.0), 5.0, 10.0])  # a <= 2, truth 3
    sol = _solve(fun, lambda x, f: _decay_jac(x) / sd, np.zeros(3), lo, hi, 200, lambda: fun.n)
    ref = least_squares(lambda x: (_decay(x) - y) / sd, np.zeros(3), jac=lambda x: _decay_jac(x) / sd,
                        bounds=(lo, hi), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert sol.x[0] == pytest.approx(np.log(2.0), abs=1e-12)
    assert np.all(sol.x >= lo) and np.all(sol.x <= hi)
    assert sol.cost == pytest.approx(ref.cost, rel=1e-4)


def test_a_direction_the_data_cannot_resolve_is_left_where_it_started():
    # y = (x0 + x1) t: only the sum is seen; from (0, 0) the fit must reach x0 + x1 = 1
    # without walking along x0 - x1 (the minimum-norm answer: 0.5 each)
    t = np.linspace(0.1, 1.0, 50)
    y = 1.0 * t
    fun = Counter(lambda x: (x[0] + x[1]) * t - y)
    sol = _solve(fun, lambda x, f: np.column_stack([t, t]), np.zeros(2), np.full(2, -3.0), np.full(2, 3.0), 50,
                 lambda: fun.n)
    assert sol.success
    assert sol.x[0] - sol.x[1] == pytest.approx(0.0, abs=1e-12)
    se_sum = 1.0 / np.sqrt(np.sum(t ** 2))  # standard error of x0 + x1 at unit noise
    assert abs(sol.x.sum() - 1.0) <= CONVERGED_SE * se_sum


def test_a_broyden_update_keeps_a_sparse_jacobians_structure():
    J = csc_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]))
    u, s = np.array([1.0, 1.0, 1.0]), np.array([0.5, 0.25])
    out = _broyden(J, u, s)
    np.testing.assert_allclose(out.toarray(), [[1.5, 0.0], [0.0, 2.25], [3.5, 0.0]])
    assert out.nnz == J.nnz
    np.testing.assert_allclose(_broyden(J.toarray(), u, s), J.toarray() + np.outer(u, s))
