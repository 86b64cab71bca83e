"""Thermal network kernels: exact (exponential) updates of the coolant path and chips.

The coolant path is a chain of cells in flow order. Each cell is advanced over a step
with its inputs (chip power, inlet temperature) held at their step means, using the exact
solution of its linear ODE (matrix exponential), so the update is unconditionally stable
and has no error for inputs that are constant over the step: the stiff junction nodes
(time constants of tenths of a second) follow the workload at any step. A cell passes its
*step-mean* outlet temperature downstream, so the enthalpy one cell sends is exactly
what the next receives: energy is conserved to round-off. The one place the loop closes
(CDU return into the reservoir) takes the previous step's value; the energy in that
one-step transit is counted by ``twin.engine.Network.stored_energy``.

Cell kinds:
- 0 fluid: ``C dT/dt = mcp (T_in - T) + Q_ext`` (:func:`fluid_coefficients`,
  :func:`fluid_step`: written so that no term grows as ``mcp`` vanishes: a pump trip
  leaves ~1e-10 L/min of solver residue, and ``T_in + Q_ext/mcp`` is then 1e8 K)
- 1 plate: chip junction, plate base and plate coolant, states ``[Tj, Tb, Tf]``:
  ``Cj dTj/dt = P - (Tj - Tb)/R``; ``Cb dTb/dt = (Tj - Tb)/R - G (Tb - T_in)``;
  ``Cf dTf/dt = G (Tb - T_in) + mcp (T_in - Tf)`` with ``G`` the plate conductance
  referred to the inlet (effectiveness form, see ``twin.correlations``).
- 2 heat exchanger (CDU secondary side, no capacity): ``T_out = T_in - eps Cmin/mcp (T_in - T_fac)``.
"""
import numpy as np
from .dispatch import kernel

from .workload import (JS_STEPS, NEVER, WP_SHUT, WS_CLOCK_INT, WS_FIRST_SHUTDOWN, WS_INTERVAL_THROTTLED, WS_SHUTDOWN,
                       chip_power_step, hold_decay)

# kinds of coolant cell (``Model.cell_kind``): plain fluid, a cold plate's coolant, the
# CDU heat exchanger's secondary side
FLUID = 0
PLATE = 1  # (cell kind, above)
HX = 2  # (cell kind, above)
# offsets into a packed plate row (see prepare_step)
PK_PHI, PK_GAM, PK_PSI_F, PK_LAM_F, PK_CF = 0, 9, 15, 18, 20
N_PK = 21  # width of a packed plate row
# columns of the sweep table (one row per edge in thermal order, see sweep_table)
SW_EDGE, SW_NODE, SW_IN0, SW_IN1, SW_SINGLE, SW_CELL0, SW_CELL1 = range(7)
N_SW = 8  # width of the sweep table
# columns of the per-cell tables: integers (CI_*) and step coefficients (CF_*)
CI_KIND, CI_AUX, CI_CHIP = range(3)
N_CI = 4  # width of the integer cell table
CF_END_IN, CF_MEAN_IN, CF_END_Q, CF_MEAN_Q, CF_CAP, CF_HX_RATIO = range(6)
N_CF = 6  # width of the cell coefficient table
# the accumulators ``acc`` of :func:`advance`: run totals, record-interval sums, then each
# chip's energy over the record interval from ACC_CHIPS on
ACC_CHIP_J, ACC_AUX_LIQUID_J, ACC_LIQUID_J, ACC_HX_J, ACC_I_LIQUID, ACC_I_HX, ACC_I_SPAN, ACC_I_AUX, \
    ACC_I_AUX_LIQUID = range(9)
ACC_CHIPS = 9  # first per-chip accumulator


@kernel(cache=True)
def _mul(x, y, out):
    """out = x @ y for 3-row matrices, without allocation or a BLAS call."""
    for i in range(3):
        for j in range(y.shape[1]):
            out[i, j] = x[i, 0] * y[0, j] + x[i, 1] * y[1, j] + x[i, 2] * y[2, j]


@kernel(cache=True)
def plate_propagator(dt, r_jb, c_j, c_b, c_f, g, mcp, out_phi, out_gam, out_psi, out_lam):
    """Exact one-step maps of the plate cell for inputs u = [P, T_in] held over the step.

    ``x1 = phi x0 + gam u`` and the step mean ``xbar = psi x0 + lam u``: the blocks of
    the exponential of the augmented matrix [[A, 0, B], [I, 0, 0], [0, 0, 0]] h (Van
    Loan, IEEE TAC 23 (1978) 395), ``phi = e^{Ah}``, ``S = int_0^h e^{As} ds``,
    ``gam = S B``, ``L = int_0^h int_0^s e^{Ar} dr ds B``, with ``psi = S/h`` and
    ``lam = L/h``. Computed by scaling and squaring (Moler & Van Loan, SIAM Review 45
    (2003), method 3) on the 3x3 blocks: Taylor series at ``h' = h/2^s`` with
    ``||A h'|| <= 1/4`` to machine precision, then ``s`` doublings
    ``phi <- phi^2``, ``S <- S + phi S``, ``gam <- gam + phi gam``,
    ``L <- L + h' gam + phi L`` (h' doubling each time). No allocation per call.
    """
    a = np.zeros((3, 3))
    a[0, 0] = -1.0 / (r_jb * c_j)
    a[0, 1] = 1.0 / (r_jb * c_j)
    a[1, 0] = 1.0 / (r_jb * c_b)
    a[1, 1] = -(1.0 / r_jb + g) / c_b
    a[2, 1] = g / c_f
    a[2, 2] = -mcp / c_f
    b = np.zeros((3, 2))
    b[0, 0] = 1.0 / c_j
    b[1, 1] = g / c_b
    b[2, 1] = (mcp - g) / c_f
    norm = 0.0
    for i in range(3):
        norm = max(norm, abs(a[i, 0]) + abs(a[i, 1]) + abs(a[i, 2]))
    h = dt
    s = 0
    while norm * h > 0.25:
        h *= 0.5
        s += 1
    # Taylor: phi = sum (Ah)^k/k!, S = h sum (Ah)^k/(k+1)!, Lb = h^2 sum (Ah)^k/(k+2)!
    # (explicit loops, not np.eye or slice assignment: those cost seconds of compile time)
    phi = np.zeros((3, 3))
    sm = np.zeros((3, 3))
    lb = np.zeros((3, 3))
    term = np.zeros((3, 3))  # (Ah)^k / k!
    for i in range(3):
        phi[i, i] = 1.0
        sm[i, i] = h
        lb[i, i] = 0.5 * h * h
        term[i, i] = 1.0
    nxt = np.empty((3, 3))
    for k in range(1, 30):
        big = 0.0
        for i in range(3):
            for j in range(3):
                nxt[i, j] = (a[i, 0] * term[0, j] + a[i, 1] * term[1, j] + a[i, 2] * term[2, j]) * h / k
        for i in range(3):
            for j in range(3):
                t = nxt[i, j]
                term[i, j] = t
                phi[i, j] += t
                sm[i, j] += t * h / (k + 1)
                lb[i, j] += t * h * h / ((k + 1) * (k + 2))
                big = max(big, abs(t))
        if big < 1e-18:
            break
    gam = np.empty((3, 2))
    lam = np.empty((3, 2))
    _mul(sm, b, gam)
    _mul(lb, b, lam)
    p_sm = np.empty((3, 3))
    p_gam = np.empty((3, 2))
    p_lam = np.empty((3, 2))
    for _ in range(s):
        _mul(phi, lam, p_lam)
        _mul(phi, gam, p_gam)
        _mul(phi, sm, p_sm)
        for i in range(3):
            for j in range(2):
                lam[i, j] += h * gam[i, j] + p_lam[i, j]  # uses the old gam and h
                gam[i, j] += p_gam[i, j]
            for j in range(3):
                sm[i, j] += p_sm[i, j]
        _mul(phi, phi, nxt)
        for i in range(3):
            for j in range(3):
                phi[i, j] = nxt[i, j]
        h *= 2.0
    for i in range(3):
        for j in range(3):
            out_phi[i, j] = phi[i, j]
            out_psi[i, j] = sm[i, j] / dt
        for j in range(2):
            out_gam[i, j] = gam[i, j]
            out_lam[i, j] = lam[i, j] / dt


def sweep_table(edge_order, edge_from, node_in_ptr, node_in_edge, edge_cell_ptr):
    """One row per edge in thermal order (columns SW_*): the edge, the node it leaves,
    that node's inflow range in ``node_in_edge``, its single inflow edge (-1 when it
    mixes several) and the edge's cell range. The sweep reads one row per edge instead of
    chasing five index arrays (17 % of the kernel's time on the reference rack: see
    docs/performance.md)."""
    sw = np.zeros((edge_order.size, N_SW), dtype=np.int64)
    for i, e in enumerate(edge_order):
        node = edge_from[e]
        j0, j1 = node_in_ptr[node], node_in_ptr[node + 1]
        sw[i] = (e, node, j0, j1, node_in_edge[j0] if j1 - j0 == 1 else -1,
                 edge_cell_ptr[e], edge_cell_ptr[e + 1], 0)
    return sw


def cell_table(cell_kind, cell_aux, cell_chip):
    """Per-cell integers (columns CI_*): kind, tray (a fluid cell that takes its tray's
    auxiliary heat, a plate cell: the tray of its chip; -1: none), chip (-1: none)."""
    ci = np.zeros((cell_kind.size, N_CI), dtype=np.int64)
    ci[:, CI_KIND], ci[:, CI_AUX], ci[:, CI_CHIP] = cell_kind, cell_aux, cell_chip
    return ci


# below this x = mcp dt / C the step's weights come from their Taylor series (the next
# term is below 1e-18 there); above it from expm1, exact to round-off
SERIES_X = 1e-3


@kernel(cache=True)
def fluid_coefficients(dt, mcp, cap, out, c):
    """A fluid cell's step weights (``out[c, CF_END_IN:CF_MEAN_Q + 1]``) for
    ``C dT/dt = mcp (T_in - T) + Q`` with ``T_in`` and ``Q`` held over the step ``dt``.

    The exact solution from ``T0``, with ``x = mcp dt / C``, ``g = (1 - e^-x) / x`` and
    ``h = (1 - g) / x``: ``T(dt) = T0 + (T_in - T0) x g + Q dt g / C`` and its step
    mean ``T0 + (T_in - T0) x h + Q dt h / C``. Every weight is bounded as ``mcp -> 0``
    (``g -> 1``, ``h -> 1/2``: the stagnant cell heats at ``Q / C``) and as ``x`` grows
    (``Q dt g / C -> Q / mcp``: the cell without capacity). The usual form
    ``T_eq + (T0 - T_eq) e^-x`` with ``T_eq = T_in + Q / mcp`` subtracts two numbers
    of order ``Q / mcp``: at the 1e-10 L/min a stopped loop's hydraulic solve leaves,
    hundreds of kelvin of round-off. ``g`` from ``expm1`` (no cancellation) and, below
    :data:`SERIES_X`, both from their Taylor series. A cell without capacity (``cap
    <= 0``) takes none of these (:func:`fluid_step`)."""
    if cap <= 0.0:
        return
    x = dt * mcp / cap if mcp > 0.0 else 0.0
    if x < SERIES_X:
        g = 1.0 - x * (1.0 / 2.0 - x * (1.0 / 6.0 - x * (1.0 / 24.0 - x / 120.0)))
        h = 1.0 / 2.0 - x * (1.0 / 6.0 - x * (1.0 / 24.0 - x * (1.0 / 120.0 - x / 720.0)))
    else:
        g = -np.expm1(-x) / x
        h = (1.0 - g) / x
    out[c, CF_END_IN] = x * g
    out[c, CF_MEAN_IN] = x * h
    out[c, CF_END_Q] = dt * g / cap
    out[c, CF_MEAN_Q] = dt * h / cap


@kernel(cache=True)
def fluid_step(t0, t_in, q, mcp, coef, c):
    """A fluid cell over one step: its end temperature and step mean, from its
    temperature ``t0``, inflow temperature ``t_in`` and heat ``q`` [W]
    (:func:`fluid_coefficients`' weights, row ``c`` of ``coef``). A cell without capacity passes
    ``t_in + q / mcp`` (no flow: ``t_in``; :func:`twin.components.rack.tray` gives the one cell that takes
    heat a capacity)."""
    if coef[c, CF_CAP] > 0.0:
        d = t_in - t0
        return (t0 + d * coef[c, CF_END_IN] + q * coef[c, CF_END_Q],
                t0 + d * coef[c, CF_MEAN_IN] + q * coef[c, CF_MEAN_Q])
    t_eq = t_in + (q / mcp if mcp > 0.0 else 0.0)
    return t_eq, t_eq


@kernel(cache=True,
        aot=(
            "none(f8, i8[:, ::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], "
            "f8[::1], f8[:, ::1], f8[:, ::1])"))
def prepare_step(dt, cell_int, cell_edge, cell_c, edge_mcp,
                 chip_r, chip_cj, chip_cb, chip_g, cell_hx, cell_coef, packed):
    """Per-cell update coefficients for a step size and the current flows.

    ``cell_coef[cell, :]`` (columns CF_*): a fluid cell's step weights
    (:func:`fluid_coefficients`) and capacity, an HX cell's ``eps Cmin / mcp`` (``cell_hx[cell]``: that CDU
    exchanger's ``eps Cmin`` [W/K]; zero elsewhere). ``packed[chip, :]`` holds what the
    step needs of a plate's maps in one row (PK_* offsets): phi (9, row-major), gam (6,
    row-major), the coolant row of psi (3) and of lam (2), the coolant capacity."""
    phi = np.empty((3, 3))
    gam = np.empty((3, 2))
    psi = np.empty((3, 3))
    lam = np.empty((3, 2))
    for c in range(cell_int.shape[0]):
        kind = cell_int[c, CI_KIND]
        mcp = edge_mcp[cell_edge[c]]
        cap = cell_c[c]
        for j in range(N_CF):
            cell_coef[c, j] = 0.0
        cell_coef[c, CF_CAP] = cap
        if kind == FLUID:
            fluid_coefficients(dt, mcp, cap, cell_coef, c)
        elif kind == PLATE:
            k = cell_int[c, CI_CHIP]
            plate_propagator(dt, chip_r[k], chip_cj[k], chip_cb[k], cap, chip_g[k], mcp, phi, gam, psi, lam)
            for i in range(3):
                for j in range(3):
                    packed[k, PK_PHI + 3 * i + j] = phi[i, j]
                for j in range(2):
                    packed[k, PK_GAM + 2 * i + j] = gam[i, j]
            for j in range(3):
                packed[k, PK_PSI_F + j] = psi[2, j]
            for j in range(2):
                packed[k, PK_LAM_F + j] = lam[2, j]
            packed[k, PK_CF] = cap
        else:
            cell_coef[c, CF_HX_RATIO] = cell_hx[c] / mcp if mcp > 0.0 else 0.0


@kernel(cache=True, error_model="numpy", fastmath=True,
        aot=(
            "i8(i8, f8, i8, i8, i8[:, ::1], i8[::1], i8[:, ::1], f8[:, ::1], f8[::1], f8[:, ::1], f8, "
            "f8[:, ::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[:, ::1], f8[:, ::1], i8[::1], "
            "f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1], f8[::1], f8[::1], f8[::1], "
            "f8[::1], f8[::1], i8[::1], i8[::1], i8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], "
            "f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1])"))
def advance(n_steps, dt, step0, rec_every,
            sweep, node_in_edge, cell_int, cell_coef, edge_mcp, pk, fac_temp,
            demand, demand_row, aux_base, aux_slope, aux_frac,
            wp, ws, chip_job, jp, js, job_tmp,
            chip_x, cell_t, edge_out, node_t,
            acc, chip_tj_max, interval_tj_max,
            rec_nodes, rec_edges, rec_col, rec_tj, rec_tj_max, rec_power, rec_clock, rec_throttled, rec_scalar,
            rec_node_t, rec_edge_out, rec_job, rec_cdu_heat):
    """Advance the network ``n_steps`` steps of ``dt`` seconds.

    The network: ``sweep`` (edges in thermal order, see :func:`sweep_table`),
    ``node_in_edge``, ``cell_int`` (:func:`cell_table`); coefficients from
    :func:`prepare_step`: ``cell_coef``, ``pk``; ``edge_mcp`` [W/K].
    Inputs of step ``n``: ``demand[demand_row[n], chip]`` [W] (step means; a block whose
    demand does not change is one row); chip power is ``demand`` passed through clocks,
    throttling and the training waveforms of :func:`twin.kernels.workload.chip_power_step`
    (arrays ``wp`` ... ``job_tmp``). Each tray's auxiliary power follows its chips:
    ``max(aux_base[tray] + aux_slope[tray] * (its chips' power this step), 0)`` [W] while
    any of its chips runs, none once they have all shut down (the tray's BMC powers it
    off: ASSUMPTION), a share
    ``aux_frac[tray]`` of it into the coolant leaving the tray, the rest to air.
    State (updated in place): ``chip_x[chip, 3]`` = [Tj, Tb, Tf], ``cell_t``, ``edge_out``
    (step-mean outlet temperature of every edge), ``node_t`` (mixed node temperatures).
    Accumulators ``acc`` (ACC_*): chip energy, aux energy into liquid, heat into the
    coolant, heat out through the HX over the run [J]; heat into the coolant and out
    through the HX, the interval's length, all aux energy and aux energy into the liquid
    over the current record interval; from ACC_CHIPS each chip's energy over it
    (interval means are recorded: ``rec_scalar`` columns liquid heat, HX heat, aux power,
    aux power into the liquid [W]); after the chips, each CDU's heat out through its
    exchanger over the interval (an HX cell's ``CI_AUX`` is its CDU; recorded as the mean
    ``rec_cdu_heat`` [W]).
    ``chip_tj_max`` is each junction's maximum over every step of the run,
    ``interval_tj_max`` over the current record interval (recorded as ``rec_tj_max``). Records are written every
    ``rec_every`` global steps (``step0`` is the global index of the first step).
    Records hold the temperatures of the nodes ``rec_nodes`` and the outflows of the edges
    ``rec_edges`` only; chip ``k``'s records go to column ``rec_col[k]``: junction at the
    record instant, its maximum, mean power, mean clock and seconds throttled over the
    interval. Returns the number of records written.

    A plate's heat into its coolant over a step is ``mcp (Tf_mean - T_in) dt + Cf (Tf1 -
    Tf0)``: its coolant cell's energy balance, exact for the exact maps.
    """
    n_chip = chip_x.shape[0]
    interval_power = acc[ACC_CHIPS:ACC_CHIPS + n_chip]
    cdu0 = ACC_CHIPS + n_chip  # each CDU's interval HX heat
    tray_p = np.zeros(aux_base.shape[0])  # chip power of each tray this step [W]
    tray_on = np.zeros(aux_base.shape[0])  # 1 while any chip of the tray has not shut down
    # each chip's state, interval sums and step power in one row for the run: columns
    # Tj, Tb, Tf, interval energy, interval max Tj, power, shutdown temperature (NEVER once
    # it has shut down) (one cache line per chip)
    cx = np.empty((n_chip, 8))
    for k in range(n_chip):
        cx[k, 0] = chip_x[k, 0]
        cx[k, 1] = chip_x[k, 1]
        cx[k, 2] = chip_x[k, 2]
        cx[k, 3] = interval_power[k]
        cx[k, 4] = interval_tj_max[k]
        cx[k, 5] = 0.0
        cx[k, 6] = wp[k, WP_SHUT] if ws[k, WS_SHUTDOWN] <= 0.0 else NEVER
    chip_power = cx[:, 5]
    decay = np.empty(n_chip)
    hold_decay(wp, dt, decay)
    r = 0
    inv_dt = 1.0 / dt
    # each mixing node's 1 / (sum of inflow mcp): the flows are fixed over the call, and
    # a multiplication keeps a division off the return header's serial chain
    inv_wsum = np.zeros(sweep.shape[0])
    for i in range(sweep.shape[0]):
        if sweep[i, SW_SINGLE] < 0:
            wsum = 0.0
            for j in range(sweep[i, SW_IN0], sweep[i, SW_IN1]):
                wsum += edge_mcp[node_in_edge[j]]
            if wsum > 0.0:
                inv_wsum[i] = 1.0 / wsum
    for n in range(n_steps):
        dr = np.uint64(demand_row[n])
        chip_power_step(dr, step0 + n, dt, demand, cx, wp, ws, chip_job, jp, js, job_tmp, decay, chip_power)
        # local accumulators: the arrays they end in may alias anything, as far as the
        # compiler knows, so keep the sums in registers through the sweep
        step_liquid = 0.0
        step_hx = 0.0
        step_aux = 0.0
        step_aux_all = 0.0
        step_chip = 0.0
        for i in range(sweep.shape[0]):
            # indices as unsigned integers: numba then skips its negative-index fix-up
            # on every access (14 % of the kernel's time)
            e = np.uint64(sweep[i, SW_EDGE])
            node = np.uint64(sweep[i, SW_NODE])
            # mix the step-mean outflows of the edges entering this node
            single = sweep[i, SW_SINGLE]
            if single >= 0:  # most nodes: one inflow, nothing to mix
                ei = np.uint64(single)
                if edge_mcp[ei] > 0.0:
                    t_in = edge_out[ei]
                    node_t[node] = t_in
                else:
                    t_in = node_t[node]
            else:
                inv = inv_wsum[i]
                if inv > 0.0:
                    tsum = 0.0
                    for j in range(np.uint64(sweep[i, SW_IN0]), np.uint64(sweep[i, SW_IN1])):
                        ei = np.uint64(node_in_edge[j])
                        tsum += edge_mcp[ei] * edge_out[ei]
                    t_in = tsum * inv
                    node_t[node] = t_in
                else:
                    t_in = node_t[node]
            mcp = edge_mcp[e]
            for c in range(np.uint64(sweep[i, SW_CELL0]), np.uint64(sweep[i, SW_CELL1])):
                kind = cell_int[c, CI_KIND]
                if kind == FLUID:
                    q_ext = 0.0
                    ia = cell_int[c, CI_AUX]
                    if ia >= 0:  # the tray's return: its aux power, from its chips' (all upstream)
                        t = np.uint64(ia)
                        a_tray = max(aux_base[t] + aux_slope[t] * tray_p[t], 0.0) * tray_on[t]
                        tray_p[t] = 0.0
                        tray_on[t] = 0.0
                        q_ext = aux_frac[t] * a_tray
                        step_aux += q_ext * dt
                        step_aux_all += a_tray
                    t_end, t_mean = fluid_step(cell_t[c], t_in, q_ext, mcp, cell_coef, c)
                    cell_t[c] = t_end
                    t_in = t_mean
                elif kind == PLATE:
                    k = np.uint64(cell_int[c, CI_CHIP])
                    p = cx[k, 5]
                    a0 = cx[k, 0]
                    a1 = cx[k, 1]
                    a2 = cx[k, 2]
                    tj = (pk[k, 0] * a0 + pk[k, 1] * a1 + pk[k, 2] * a2 + pk[k, 9] * p + pk[k, 10] * t_in)
                    if tj >= cx[k, 6]:
                        # the hardware shutdown trips inside the step, when the junction
                        # crosses its limit (linear in time within the step): the chip drew
                        # its power until then, nothing after, and peaked at the limit
                        t_shut = cx[k, 6]
                        frac = min(max((t_shut - a0) / (tj - a0), 0.0), 1.0) if tj > a0 else 0.0
                        p *= frac
                        cx[k, 5] = p
                        tj = (pk[k, 0] * a0 + pk[k, 1] * a1 + pk[k, 2] * a2 + pk[k, 9] * p + pk[k, 10] * t_in)
                        cx[k, 4] = max(cx[k, 4], t_shut)
                        cx[k, 6] = NEVER
                        ws[k, WS_SHUTDOWN] = 1.0
                        if ws[k, WS_FIRST_SHUTDOWN] < 0.0:
                            ws[k, WS_FIRST_SHUTDOWN] = step0 + n
                    tb = (pk[k, 3] * a0 + pk[k, 4] * a1 + pk[k, 5] * a2 + pk[k, 11] * p + pk[k, 12] * t_in)
                    tf = (pk[k, 6] * a0 + pk[k, 7] * a1 + pk[k, 8] * a2 + pk[k, 13] * p + pk[k, 14] * t_in)
                    tf_mean = (pk[k, 15] * a0 + pk[k, 16] * a1 + pk[k, 17] * a2 + pk[k, 18] * p + pk[k, 19] * t_in)
                    cx[k, 0] = tj
                    cx[k, 1] = tb
                    cx[k, 2] = tf
                    step_liquid += mcp * (tf_mean - t_in) + pk[k, PK_CF] * (tf - a2) * inv_dt
                    step_chip += p
                    t = np.uint64(cell_int[c, CI_AUX])
                    tray_p[t] += p
                    if ws[k, WS_SHUTDOWN] <= 0.0:  # not shut down (its power may still be zero)
                        tray_on[t] = 1.0
                    cx[k, 3] += p * dt
                    cx[k, 4] = max(cx[k, 4], tj)  # folded into chip_tj_max at each record
                    cell_t[c] = tf
                    t_in = tf_mean
                else:
                    q_hx = cell_coef[c, CF_HX_RATIO] * mcp * (t_in - fac_temp)
                    step_hx += q_hx * dt
                    acc[cdu0 + cell_int[c, CI_AUX]] += q_hx * dt
                    t_in = t_in - cell_coef[c, CF_HX_RATIO] * (t_in - fac_temp)
                    cell_t[c] = t_in
            edge_out[e] = t_in
        step_liquid = step_liquid * dt + step_aux
        step_chip *= dt
        acc[ACC_CHIP_J] += step_chip
        acc[ACC_AUX_LIQUID_J] += step_aux
        acc[ACC_LIQUID_J] += step_liquid
        acc[ACC_HX_J] += step_hx
        acc[ACC_I_LIQUID] += step_liquid
        acc[ACC_I_HX] += step_hx
        acc[ACC_I_SPAN] += dt
        acc[ACC_I_AUX] += step_aux_all * dt
        acc[ACC_I_AUX_LIQUID] += step_aux
        gstep = step0 + n + 1
        if gstep % rec_every == 0 and r < rec_tj.shape[0]:
            span = acc[ACC_I_SPAN]
            for k in range(n_chip):
                col = np.uint64(rec_col[k])
                rec_tj[r, col] = cx[k, 0]
                rec_tj_max[r, col] = cx[k, 4]
                if cx[k, 4] > chip_tj_max[k]:
                    chip_tj_max[k] = cx[k, 4]
                cx[k, 4] = -1e300
                rec_power[r, col] = cx[k, 3] / span
                cx[k, 3] = 0.0
                rec_clock[r, col] = 1.0 - ws[k, WS_CLOCK_INT] / span  # WS_CLOCK_INT: the clock deficit
                ws[k, WS_CLOCK_INT] = 0.0
                rec_throttled[r, col] = ws[k, WS_INTERVAL_THROTTLED]
                ws[k, WS_INTERVAL_THROTTLED] = 0.0
            rec_scalar[r, 0] = acc[ACC_I_LIQUID] / span
            rec_scalar[r, 1] = acc[ACC_I_HX] / span
            rec_scalar[r, 2] = acc[ACC_I_AUX] / span
            rec_scalar[r, 3] = acc[ACC_I_AUX_LIQUID] / span
            for i in range(rec_cdu_heat.shape[1]):
                rec_cdu_heat[r, i] = acc[cdu0 + i] / span
                acc[cdu0 + i] = 0.0
            for i in range(rec_nodes.shape[0]):
                rec_node_t[r, i] = node_t[rec_nodes[i]]
            for i in range(rec_edges.shape[0]):
                rec_edge_out[r, i] = edge_out[rec_edges[i]]
            for j in range(rec_job.shape[1]):
                rec_job[r, j] = js[j, JS_STEPS]
            for i in range(ACC_I_LIQUID, ACC_CHIPS):
                acc[i] = 0.0
            r += 1
    for k in range(n_chip):
        chip_x[k, 0] = cx[k, 0]
        chip_x[k, 1] = cx[k, 1]
        chip_x[k, 2] = cx[k, 2]
        interval_power[k] = cx[k, 3]
        # steps after the last record count for the run's maxima too
        interval_tj_max[k] = cx[k, 4]
        if cx[k, 4] > chip_tj_max[k]:
            chip_tj_max[k] = cx[k, 4]
    return r
