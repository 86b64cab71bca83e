"""The coolant transport and the CDU heat exchanger against references outside the model:
plug flow and the tanks-in-series model for the hoses (Levenspiel), the CDU rating
convention and the counterflow effectiveness of ``ht`` for the heat exchanger."""
import math

import ht
import numpy as np
import pytest

import twin
from twin.build import HOSE_CELLS, LPM
from twin.engine import FLOW_CONTROL_RTOL

from .conftest import REFERENCE, steady_overrides

# Hose transport. The run's step: each coolant cell is exact for an inlet held over a
# step, and hands its step-mean outflow to the next. For N tanks of residence tau/N each
# that makes the sampled response's variance tau^2/N + N dt^2 (1/6 - x^2/360 + ...),
# x = dt N / tau (each hand-over is a boxcar of width dt, variance dt^2/12, twice per tank:
# coth(x/2) expanded); its mean is exactly tau. So the variance lies in
# [tau^2/N, tau^2/N + N dt^2 / 6]: the scheme's known error, the test's band.
HOSE_DT_S = 0.02
HOSE_STEP_K = 5.0
# The exchanger is made ideal for this run (ua_scale 100: NTU ~500, effectiveness 1 to
# machine precision), so the CDU supply follows the facility step through the exchanger's
# own 3 L (1.2 s at 150 L/min) and nothing of the loop's return comes back into it: 60 s
# leave e^-45 of the step unfinished. One hydraulic block: the hose's flow is that of the
# steady start throughout. What remains is round-off on sums of 3,000 samples of
# temperatures near 35 degC (each good to ~1e-14 K against a 5 K step).
HOSE_RUN_S = 60.0
HOSE_MEAN_RTOL = 1e-9
HOSE_VAR_ROUNDOFF_S2 = 1e-9
# The CDU approach at rated flows: the ideal flow controller holds the secondary flow to
# FLOW_CONTROL_RTOL; the approach moves 1.2 times as much (d ln approach / d ln Q_sec at
# the rating point, from effectiveness-NTU), the steady state sits within 1e-9 K of its
# fixed point (twin.engine.STEADY_TOL_K) on a 3.8 K approach.
APPROACH_RTOL = 2 * FLOW_CONTROL_RTOL
# Off-design effectiveness: measured flows are used, so only the steady state's residual
# (1e-9 K on inlet temperature differences of 5-15 K) and round-off remain.
EFFECTIVENESS_RTOL = 1e-9


def _moments_of_step(t, y, t_step):
    """Mean and variance [s, s^2] of the derivative of a step response sampled as step
    means (the sample at ``t`` is the mean over ``(t - dt, t]``): with ``Y`` normalised from
    0 before the step to 1 at the end, ``mean = sum (1 - Y) dt`` and the second moment
    ``2 sum (1 - Y) (t' + dt/2) dt``, ``t'`` the time since the last sample before the step
    (the discrete moments of the sampled response's increments, summed by parts)."""
    dt = t[1] - t[0]
    k0 = int(np.searchsorted(t, t_step - 1e-9)) - 1  # the last sample before the step
    y0, y1 = y[k0], y[-1]
    big_y = (y[k0:] - y0) / (y1 - y0)
    tt = t[k0:] - t[k0]
    mean = np.sum(1.0 - big_y) * dt
    second = 2.0 * np.sum((1.0 - big_y) * (tt + 0.5 * dt)) * dt
    return mean, second - mean**2


def test_supply_hose_delays_a_supply_step_by_v_over_q_with_the_tanks_in_series_variance():
    """A step of the facility supply (32 -> 37 degC) reaches the CDU supply through the heat
    exchanger's volume; the supply hose passes it on to the rack inlet. For any input, the
    mean and variance of a vessel's response add to the input's (Levenspiel, *Chemical
    Reaction Engineering*, 3rd ed., Wiley 1999, ch. 13: for an arbitrary input,
    ``t_out - t_in`` and ``sigma^2_out - sigma^2_in`` are the vessel's). Between
    ``cdu/supply_temp`` and ``rack/supply_temp`` the delay must be the plug-flow residence
    time ``V/Q`` of the hose (its bore and length from the rack file, the run's flow), and
    the added variance that of N tanks in series, ``tau^2/N`` (Levenspiel ch. 14,
    ``sigma^2_theta = 1/N``), N = ``twin.build.HOSE_CELLS``, within the scheme's known
    error (see ``HOSE_DT_S``).

    Catches: a hose volume or flow off (wrong bore, cells not summing to the hose), cells
    that hand on their end-of-step temperature instead of the step mean (mean off by dt/2
    a cell), an explicit (Euler) cell update (variance off by ~dt tau, 60 times the
    band), a hose skipped by the thermal sweep."""
    s = twin.load_scenario(REFERENCE, steady_overrides(duration_s=HOSE_RUN_S, **{
        "simulation.time_step_s": HOSE_DT_S, "simulation.output_interval_s": HOSE_DT_S,
        "simulation.hydraulic_update_s": HOSE_RUN_S, "cdu.heat_exchanger.ua_scale": 100.0,
        "facility.supply_temp_c": 32.0,
        "faults": [{"kind": "facility_supply_temp", "start_s": 5.0, "value": 32.0 + HOSE_STEP_K}]}))
    tel = twin.simulate(s).telemetry()
    t = tel.time
    mean_in, var_in = _moments_of_step(t, tel["cdu/supply_temp"], 5.0)
    mean_out, var_out = _moments_of_step(t, tel["rack/supply_temp"], 5.0)
    hose = s.rack.supply_hose
    volume = math.pi / 4.0 * (hose.inner_diameter_mm * 1e-3) ** 2 * hose.length_m
    tau = volume / (tel["rack/flow"][-1] * LPM)
    assert mean_out - mean_in == pytest.approx(tau, rel=HOSE_MEAN_RTOL)
    tanks = tau**2 / HOSE_CELLS
    band = HOSE_CELLS * HOSE_DT_S**2 / 6.0
    assert tanks - HOSE_VAR_ROUNDOFF_S2 <= var_out - var_in <= tanks + band + HOSE_VAR_ROUNDOFF_S2
    # the band is a small part of what is tested: a plug (variance 0) or one mixed tank
    # (tau^2) would be far outside it
    assert band < 0.01 * tanks


def _steady_hx_run(secondary_lpm, facility_lpm, **over):
    s = twin.load_scenario(REFERENCE, steady_overrides(**{
        "controls.flow_setpoint_lpm": secondary_lpm, "facility.flow_lpm": facility_lpm, **over}))
    r = twin.simulate(s)
    return s, r.model, r.telemetry()


def test_cdu_heat_exchanger_holds_its_rated_approach_at_rated_flows():
    """The CDU exchanger is rated 250 kW at a 4 K approach with 280 L/min on each side: at
    those flows and that heat the secondary supply leaves 4 K above the facility supply (the
    rating convention, e.g. Vertiv CoolChip CDU data sheets, 'kW at 4 K approach';
    docs/sources.md). A rack of 44 compute trays at full power puts ~240 kW through it at
    280 L/min; at fixed flows an exchanger's effectiveness is fixed, so its approach is
    proportional to its heat (effectiveness-NTU: ``approach = Q (1/(eps Cmin) - 1/C_hot)``,
    Incropera et al., *Fundamentals of Heat and Mass Transfer*, 6th ed., sec. 11.4): the
    engine's ``cdu/supply_temp - facility/supply_temp`` must be ``4 K x heat / 250 kW``.

    Catches: a UA derived from the rating with the approach taken on the wrong side (hot
    inlet, or cold outlet), the facility's heat capacity used for the secondary, a
    heat-exchanger cell that does not see the loop's flow."""
    # stronger pumps (head_scale) so that 44 trays really get the rated 280 L/min
    s, model, tel = _steady_hx_run(280.0, 280.0, **{"rack.tray_stack": [{"type": "compute", "count": 44}],
                                                    "cdu.pumps.head_scale": 1.5})
    hx = s.cdu.heat_exchanger
    assert tel["rack/flow"][-1] == pytest.approx(hx.rated_secondary_flow_lpm, rel=1e-5)  # the premise: rated flows
    heat = tel["cdu/heat"][-1]
    assert heat == pytest.approx(hx.rated_heat_kw * 1e3, rel=0.05)  # at the rating, give or take 5 %
    approach = tel["cdu/supply_temp"][-1] - tel["facility/supply_temp"][-1]
    assert approach == pytest.approx(hx.approach_k * heat / (hx.rated_heat_kw * 1e3), rel=APPROACH_RTOL)


def _effectiveness_from_rating(s, model, c_sec, c_fac):
    """What the model documents (docs/model.md, CDU heat exchanger), computed with ``ht``:
    UA from the rating by ``ht.NTU_from_effectiveness`` (counterflow); at the rating the two
    sides' hA are equal (2 UA each), each scaled as ``(mdot / mdot_rated)^n``, the two in
    series; then ``ht.effectiveness_from_NTU`` at the run's capacity rates."""
    hx = s.cdu.heat_exchanger
    c_sec_r = hx.rated_secondary_flow_lpm * LPM * model.rho * model.cp
    c_fac_r = hx.rated_facility_flow_lpm * LPM * model.facility_rho * model.facility_cp
    heat_r = hx.rated_heat_kw * 1e3
    c_min_r, c_max_r = min(c_sec_r, c_fac_r), max(c_sec_r, c_fac_r)
    eps_r = heat_r / (c_min_r * (hx.approach_k + heat_r / c_sec_r))  # hot inlet = hot outlet + Q/C_hot
    ua_r = c_min_r * ht.NTU_from_effectiveness(eps_r, Cr=c_min_r / c_max_r, subtype="counterflow")
    n = model.hx_exponent[0]
    ha_sec = 2.0 * ua_r * (c_sec / c_sec_r) ** n
    ha_fac = 2.0 * ua_r * (c_fac / c_fac_r) ** n
    ua = 1.0 / (1.0 / ha_sec + 1.0 / ha_fac)
    c_min, c_max = min(c_sec, c_fac), max(c_sec, c_fac)
    return ht.effectiveness_from_NTU(ua / c_min, Cr=c_min / c_max, subtype="counterflow")


@pytest.mark.parametrize("secondary_lpm, facility_lpm", [(150.0, 200.0), (200.0, 100.0), (120.0, 400.0)])
def test_cdu_heat_exchanger_effectiveness_off_design_is_the_counterflow_effectiveness(secondary_lpm, facility_lpm):
    """Off the rated flows, the exchanger's effectiveness measured in a steady run,
    ``cdu/heat / (Cmin (cdu/return_temp - facility/supply_temp))`` (the CDU return reaches
    the exchanger through the reservoir unchanged at steady state), equals the counterflow
    effectiveness of ``ht.effectiveness_from_NTU`` with UA from the rating and each side's
    hA scaled as ``mdot^n`` (:func:`_effectiveness_from_rating`). The cases put the smaller
    capacity rate on either side (Cr from 0.29 to 0.72).

    Catches: parallel-flow or crossflow effectiveness, UA left at its rated value off
    design, the flow scaling applied to UA rather than to each side's hA, Cmin taken on
    the wrong side."""
    s, model, tel = _steady_hx_run(secondary_lpm, facility_lpm)
    c_sec = tel["rack/flow"][-1] * LPM * model.rho * model.cp
    c_fac = tel["facility/flow"][-1] * LPM * model.facility_rho * model.facility_cp
    inlet_difference = tel["cdu/return_temp"][-1] - tel["facility/supply_temp"][-1]
    measured = tel["cdu/heat"][-1] / (min(c_sec, c_fac) * inlet_difference)
    assert measured == pytest.approx(_effectiveness_from_rating(s, model, c_sec, c_fac), rel=EFFECTIVENESS_RTOL)
    # the secondary side gives up the heat the facility side takes
    secondary = c_sec * (tel["cdu/return_temp"][-1] - tel["cdu/supply_temp"][-1])
    assert secondary == pytest.approx(tel["cdu/heat"][-1], rel=EFFECTIVENESS_RTOL)
