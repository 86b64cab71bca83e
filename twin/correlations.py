"""Correlations the libraries lack, and the build-time calls into ``fluids`` and ``ht``.

Everything here is plain Python, SI, called once per model build (never per step).
Each function names the published source of its equation (tags: docs/sources.md).
"""
from __future__ import annotations

import math

import fluids
import ht
import numpy as np

G = 9.80665  # standard acceleration of gravity [m/s2] [SI-BROCHURE]
LAMINAR_RE_MAX = 2300.0  # upper Reynolds number of laminar duct flow [INCROPERA] sec. 8.1


def fanning_fRe_rectangular_Shah_London(aspect_ratio: float) -> float:
    """Fully developed laminar Poiseuille number f*Re (Fanning) of a rectangular duct.

    .. math:: fRe = 24(1 - 1.3553a + 1.9467a^2 - 1.7012a^3 + 0.9564a^4 - 0.2537a^5)

    with ``a`` the short-to-long side ratio (0 < a <= 1). Accurate to 0.05 % against the
    exact series solution.

    Reference: Shah, R. K., London, A. L., *Laminar Flow Forced Convection in Ducts*,
    Academic Press 1978 [SHAH78], eq. (341). Limits: a = 0 gives 24 (parallel plates), a = 1 gives
    14.23 (square duct, exact 14.227).
    """
    a = aspect_ratio if aspect_ratio <= 1.0 else 1.0 / aspect_ratio
    if a <= 0.0:
        raise ValueError("aspect ratio must be positive")
    return 24.0 * (1 - 1.3553 * a + 1.9467 * a**2 - 1.7012 * a**3 + 0.9564 * a**4 - 0.2537 * a**5)


def hagenbach_K_rectangular_Shah_London(aspect_ratio: float) -> float:
    """Incremental pressure-drop number K(inf) of developing laminar flow, rectangular duct.

    .. math:: K(\\infty) = 0.6796 + 1.2197a + 3.3089a^2 - 9.5921a^3 + 8.9089a^4 - 2.9959a^5

    The apparent friction over a duct of length L is ``dp = (4 fRe/Re * L/Dh + K) rho v^2/2``.
    Reference: Shah & London (1978), rectangular ducts, as quoted by Kandlikar et al.,
    *Heat Transfer and Fluid Flow in Minichannels and Microchannels*, Elsevier 2006
    [KANDLIKAR06], eq. (3.20).
    """
    a = aspect_ratio if aspect_ratio <= 1.0 else 1.0 / aspect_ratio
    return 0.6796 + 1.2197 * a + 3.3089 * a**2 - 9.5921 * a**3 + 8.9089 * a**4 - 2.9959 * a**5


def fin_efficiency_straight_adiabatic_tip(h: float, k_fin: float, thickness: float, height: float) -> float:
    """Efficiency of a straight rectangular fin with an adiabatic tip.

    .. math:: \\eta = \\tanh(mH)/(mH),\\quad m = \\sqrt{2h/(k t)}

    Reference: Incropera, DeWitt, Bergman, Lavine, *Fundamentals of Heat and Mass
    Transfer*, 6th ed. [INCROPERA], eq. (3.89) and Table 3.4 case B. The tip of a microchannel fin
    touches the plate lid; treating it as adiabatic is conservative (ASSUMPTION).
    """
    m = math.sqrt(2.0 * h / (k_fin * thickness))
    mh = m * height
    return 1.0 if mh < 1e-12 else math.tanh(mh) / mh


def pump_head_pa(flow_m3s: float, speed: float, shutoff_head_pa: float, k_pa_s2_m6: float) -> float:
    """Centrifugal pump head at a relative speed, quadratic curve with affinity laws.

    At full speed ``H(Q) = H0 - k Q|Q|``; the affinity laws (Q ~ n, H ~ n^2; e.g. Karassik,
    *Pump Handbook*, 4th ed., sec. 2.1 [KARASSIK]) give ``H(Q, s) = s^2 H0 - k Q|Q|``, which maps
    every point of the full-speed curve to ``(s Q, s^2 H)``.
    """
    return speed * speed * shutoff_head_pa - k_pa_s2_m6 * flow_m3s * abs(flow_m3s)


def pump_curve_k(shutoff_head_pa: float, rated_flow_m3s: float, rated_head_pa: float) -> float:
    """Quadratic coefficient of a pump curve through shutoff and one rated point."""
    if rated_head_pa >= shutoff_head_pa:
        raise ValueError("rated head must be below the shutoff head")
    return (shutoff_head_pa - rated_head_pa) / rated_flow_m3s**2


def aux_power_line(full_w: float, idle_w: float | None, chip_tdp_w: float, chip_idle_w: float) -> tuple:
    """Auxiliary tray power (NICs, DPUs, memory, power-conversion losses, fans) as a line in
    the tray's chip power, through ``idle_w`` with the chips at their idle power and
    ``full_w`` with them at TDP: ``P_aux = base + slope P_chips`` (clamped at zero where a
    tray's chips have shut down).

    Server power is close to linear in utilisation between its idle and busy values, idle
    about half of busy (Fan, Weber & Barroso, "Power provisioning for a warehouse-sized
    computer", ISCA 2007, sec. 4.1; Barroso & Hoelzle, "The case for energy-proportional
    computing", IEEE Computer 40(12), 2007 [FAN07]), and power-conversion losses scale with the
    power converted, which is also linear in the chips' power.
    Returns ``(base [W], slope [W per W of chip power], full [W])``; ``idle_w = None``
    keeps the power constant at ``full_w``."""
    if idle_w is None or chip_tdp_w <= chip_idle_w:
        return full_w, 0.0, full_w
    slope = (full_w - idle_w) / (chip_tdp_w - chip_idle_w)
    return idle_w - slope * chip_idle_w, slope, full_w


def pump_efficiency_bep_parabola(flow_m3s, speed, bep_flow_m3s, bep_efficiency):
    """Hydraulic efficiency of a centrifugal pump, a parabola through the origin peaking
    at the best-efficiency point, carried to other speeds by the affinity laws.

    .. math:: \\eta = \\eta_{BEP}\\,x\\,(2 - x),\\quad x = \\frac{Q}{s\\,Q_{BEP}}

    At full speed this is the quadratic efficiency characteristic ``eta = E1 Q + E2 Q^2``
    of Ulanicki, Kahler & Coulbeck, "Modeling the efficiency and power characteristics of
    a pump group", J. Water Resour. Plann. Manage. 134(1) (2008) 88-93 [ULANICKI08], with its peak
    ``eta_BEP`` at ``Q_BEP``; with speed they write it in ``Q/s``, so a point similar to
    a full-speed point (``Q ~ s``, ``H ~ s^2``) keeps its efficiency (affinity laws,
    Karassik, *Pump Handbook*, 4th ed., sec. 2.1) and shaft power goes as ``s^3``.
    Published shape: ``eta_BEP`` at ``x = 1``, ``0.75 eta_BEP`` at ``x = 0.5`` and ``1.5``,
    zero at shutoff and at ``x = 2``. Flows below zero (a check valve shut) are taken as
    zero; a stopped pump (``speed = 0``) has no efficiency (returns 0).
    """
    q = np.maximum(np.asarray(flow_m3s, dtype=float), 0.0)
    s = np.asarray(speed, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(s > 0, q / (s * bep_flow_m3s), 0.0)
    return np.where(s > 0, bep_efficiency * x * (2.0 - x), 0.0)


def pump_electric_power_w(flow_m3s, head_pa, speed, bep_flow_m3s, bep_efficiency, drive_efficiency):
    """Electrical power a pump draws [W]: hydraulic power ``Q dp`` over the hydraulic
    efficiency of :func:`pump_efficiency_bep_parabola` and the drive chain (motor times
    variable-frequency drive, ``drive_efficiency``).

    Written as ``dp s Q_BEP / (eta_BEP (2 - x) eta_drive)``, the same quantity, finite at
    zero flow: a running pump against a shut check valve still draws its shutoff power
    ``s^3 H0 Q_BEP / (2 eta_BEP eta_drive)``. A stopped pump draws 0 W. Valid up to the
    end of the head curve, which the scenario schema keeps below ``x = 2``.
    """
    q = np.maximum(np.asarray(flow_m3s, dtype=float), 0.0)
    s = np.asarray(speed, dtype=float)
    dp = np.maximum(np.asarray(head_pa, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(s > 0, q / (s * bep_flow_m3s), 0.0)
        p = dp * s * bep_flow_m3s / (bep_efficiency * (2.0 - x) * drive_efficiency)
    return np.where(s > 0, p, 0.0)


# --------------------------------------------------------------------------- pipes and fittings


def pipe_dp_pa(flow_m3s, rho, mu, length_m, diameter_m, roughness_m=1.5e-6, k_fittings=0.0):
    """Pressure drop of a round pipe plus fittings: Darcy-Weisbach with Clamond's solution
    of Colebrook (``fluids.friction_factor`` [FLUIDS]), laminar 64/Re below Re 2300."""
    area = math.pi * diameter_m**2 / 4.0
    v = abs(flow_m3s) / area
    if v == 0.0:
        return 0.0
    re = rho * v * diameter_m / mu
    fd = 64.0 / re if re < LAMINAR_RE_MAX else fluids.friction_factor(Re=re, eD=roughness_m / diameter_m)
    k_total = fluids.K_from_f(fd=fd, L=length_m, D=diameter_m) + k_fittings
    return fluids.dP_from_K(K=k_total, rho=rho, V=v)


def quick_disconnect_dp_pa(flow_m3s, rho, diameter_m, cv_gpm_psi=None, kv_m3h_bar=None):
    """Pressure drop of one mated quick-disconnect coupling from its flow coefficient,
    Cv (US gpm at 1 psi) or Kv (m3/h at 1 bar), converted to a loss coefficient on the
    coupling bore by ``fluids.Cv_to_K`` / ``fluids.Kv_to_K``."""
    if cv_gpm_psi is not None:
        k = fluids.Cv_to_K(Cv=cv_gpm_psi, D=diameter_m)
    else:
        k = fluids.Kv_to_K(Kv=kv_m3h_bar, D=diameter_m)
    v = abs(flow_m3s) / (math.pi * diameter_m**2 / 4.0)
    return fluids.dP_from_K(K=k, rho=rho, V=v)


# --------------------------------------------------------------------------- microchannel cold plate


class ColdPlateGeometry:
    """A straight-microchannel cold plate (SI). See ``scenarios/racks/*.toml`` for values."""

    def __init__(self, channel_width_m, channel_height_m, fin_width_m, channel_length_m,
                 channel_count, port_diameter_m, base_thickness_m, solid_conductivity_w_m_k):
        self.wc = channel_width_m
        self.hc = channel_height_m
        self.wf = fin_width_m
        self.length = channel_length_m
        self.n = int(channel_count)
        self.d_port = port_diameter_m
        self.t_base = base_thickness_m
        self.k_s = solid_conductivity_w_m_k

    @property
    def aspect_ratio(self):
        return min(self.wc, self.hc) / max(self.wc, self.hc)

    @property
    def hydraulic_diameter_m(self):
        return 2.0 * self.wc * self.hc / (self.wc + self.hc)

    @property
    def flow_area_m2(self):
        return self.n * self.wc * self.hc

    @property
    def footprint_m2(self):
        return self.n * (self.wc + self.wf) * self.length

    @classmethod
    def from_spec(cls, spec):
        """From a scenario's ``rack.cold_plates`` entry (millimetres to metres)."""
        return cls(spec.channel_width_mm * 1e-3, spec.channel_height_mm * 1e-3, spec.fin_width_mm * 1e-3,
                   spec.channel_length_mm * 1e-3, spec.channel_count, spec.port_inner_diameter_mm * 1e-3,
                   spec.base_thickness_mm * 1e-3, spec.solid_conductivity_w_per_m_k)

    def channel_flow(self, flow_m3s, rho, mu):
        """(hydraulic diameter [m], channel velocity [m/s], Reynolds number) at a plate flow."""
        dh = self.hydraulic_diameter_m
        v = abs(flow_m3s) / self.flow_area_m2
        return dh, v, rho * v * dh / mu

    def base_conduction_k_per_w(self):
        """1-D conduction through the plate base under the fin array [K/W]."""
        return self.t_base / (self.k_s * self.footprint_m2)


def cold_plate_dp_pa(geom: ColdPlateGeometry, flow_m3s, rho, mu):
    """Pressure drop across a microchannel cold plate, port to port.

    Channels: apparent friction of developing laminar flow, Shah & London fRe plus the
    Hagenbach factor K(inf) (see :func:`fanning_fRe_rectangular_Shah_London`); turbulent
    channels (Re > 2300) use ``fluids.friction_factor`` on the hydraulic diameter.
    Headers: a sudden expansion from the inlet port into the plenum (``fluids.exit_normal``,
    K = 1 on the port velocity), a sharp contraction from the plenum into the channel array
    and a sharp expansion out of it (``fluids.contraction_sharp`` / ``fluids.diffuser_sharp``,
    Rennels, on the channel velocity, area ratio wc/(wc+wf)), and a sharp entrance into the
    outlet port (``fluids.entrance_sharp``).
    """
    q = abs(flow_m3s)
    if q == 0.0:
        return 0.0
    dh, v_ch, re = geom.channel_flow(q, rho, mu)
    if re < LAMINAR_RE_MAX:
        fd = 4.0 * fanning_fRe_rectangular_Shah_London(geom.aspect_ratio) / re
        k_dev = hagenbach_K_rectangular_Shah_London(geom.aspect_ratio)
    else:
        fd = fluids.friction_factor(Re=re, eD=0.0)
        k_dev = 0.0
    sigma = geom.wc / (geom.wc + geom.wf)
    k_ch = fd * geom.length / dh + k_dev
    k_ch += fluids.contraction_sharp(Di1=1.0, Di2=math.sqrt(sigma))
    k_ch += fluids.diffuser_sharp(Di1=math.sqrt(sigma), Di2=1.0)
    v_port = q / (math.pi * geom.d_port**2 / 4.0)
    k_port = fluids.exit_normal() + fluids.entrance_sharp()
    return fluids.dP_from_K(K=k_ch, rho=rho, V=v_ch) + fluids.dP_from_K(K=k_port, rho=rho, V=v_port)


def cold_plate_hA_w_per_k(geom: ColdPlateGeometry, flow_m3s, rho, mu, k, cp):
    """Effective convective conductance of the fin array, base to fluid [W/K].

    ``h`` comes from the fully developed laminar Nusselt number of a rectangular duct
    (Shah & London 1978, ``ht.Nu_laminar_rectangular_Shan_London``) raised by the
    developing-flow ratio of ``ht.conv_internal.laminar_entry_Baehr_Stephan`` at the same
    Graetz number over its fully developed limit 3.657 (ASSUMPTION: the entry enhancement
    of a round duct carries over to the rectangular one on its hydraulic diameter).
    Turbulent channels use ``ht.conv_internal.turbulent_Gnielinski``. The fins are straight
    with an adiabatic tip (:func:`fin_efficiency_straight_adiabatic_tip`), so
    ``hA = h N L (wc + 2 eta H)``.
    """
    if flow_m3s == 0.0:
        return 0.0
    dh, _, re = geom.channel_flow(flow_m3s, rho, mu)
    pr = cp * mu / k
    if re < LAMINAR_RE_MAX:
        nu_fd = ht.Nu_laminar_rectangular_Shan_London(geom.aspect_ratio)
        entry = ht.conv_internal.laminar_entry_Baehr_Stephan(Re=re, Pr=pr, L=geom.length, Di=dh) / 3.657
        nu = nu_fd * entry
    else:
        fd = fluids.friction_factor(Re=re, eD=0.0)
        nu = ht.conv_internal.turbulent_Gnielinski(Re=re, Pr=pr, fd=fd)
    h = nu * k / dh
    eta = fin_efficiency_straight_adiabatic_tip(h, geom.k_s, geom.wf, geom.hc)
    return h * geom.n * geom.length * (geom.wc + 2.0 * eta * geom.hc)


def plate_conductance_w_per_k(hA, mdot_cp):
    """Base-to-fluid conductance referred to the plate inlet temperature [W/K].

    The fluid in a channel with a uniform wall temperature leaves at
    ``T_in + eps (T_wall - T_in)`` with ``eps = 1 - exp(-NTU)``, ``NTU = hA/(mdot cp)``
    ([INCROPERA] eq. 8.42b), so the heat taken up is ``eps mdot cp (T_wall - T_in)``.
    """
    if mdot_cp <= 0.0:
        return 0.0
    return mdot_cp * (1.0 - math.exp(-hA / mdot_cp))


# --------------------------------------------------------------------------- plate heat exchanger


def plate_hx_flow_exponent(reynolds_design=1000.0, prandtl=5.0, chevron_angle_deg=45.0, enlargement=1.25):
    """Exponent n of hA ~ mdot^n for a chevron plate heat exchanger, from the local slope
    of ``ht.Nu_plate_Muley_Manglik`` (Muley & Manglik, J. Heat Transfer 121 (1999) 110 [MULEY99])
    around the design Reynolds number (ASSUMPTION: 45 deg chevrons, enlargement 1.25,
    Re ~ 1000 and Pr ~ 5 in the channels; the CDU files say so where they leave
    ``flow_exponent`` out). About 0.76."""
    r1, r2 = reynolds_design / 1.1, reynolds_design * 1.1
    nu1 = ht.Nu_plate_Muley_Manglik(Re=r1, Pr=prandtl, chevron_angle=chevron_angle_deg, plate_enlargement_factor=enlargement)
    nu2 = ht.Nu_plate_Muley_Manglik(Re=r2, Pr=prandtl, chevron_angle=chevron_angle_deg, plate_enlargement_factor=enlargement)
    return math.log(nu2 / nu1) / math.log(r2 / r1)


def hx_design_ua(heat_w, approach_k, c_hot_w_k, c_cold_w_k):
    """UA of a counterflow exchanger that moves ``heat_w`` with the hot outlet
    ``approach_k`` above the cold inlet (the CDU rating convention, e.g. Vertiv CoolChip:
    'kW at 4 K approach'), by inverting effectiveness-NTU (``ht.NTU_from_effectiveness``)."""
    c_min, c_max = min(c_hot_w_k, c_cold_w_k), max(c_hot_w_k, c_cold_w_k)
    dt_max = approach_k + heat_w / c_hot_w_k  # hot inlet minus cold inlet
    eps = heat_w / (c_min * dt_max)
    if not 0.0 < eps < 1.0:
        raise ValueError(f"rating needs effectiveness {eps:.3f}, outside (0, 1)")
    ntu = ht.NTU_from_effectiveness(eps, Cr=c_min / c_max, subtype="counterflow")
    return ntu * c_min


def counterflow_effectiveness(ntu, cr):
    """Counterflow effectiveness ([KAYS-LONDON]; ``ht.effectiveness_from_NTU``), written out
    here so the kernels can evaluate it. Cr = 1 uses the limit NTU/(1+NTU)."""
    if abs(1.0 - cr) < 1e-9:
        return ntu / (1.0 + ntu)
    e = math.exp(-ntu * (1.0 - cr))
    return (1.0 - e) / (1.0 - cr * e)


def dp_coefficients_through_point(dp_pa, flow_m3s, exponent):
    """Coefficients ``(a, b)`` of ``dp = a Q + b Q|Q|`` through a measured point with a
    measured local flow exponent ``n = d ln dp / d ln Q`` there (1 <= n <= 2):

    .. math:: a = (2 - n)\\,\\Delta p / Q,\\qquad b = (n - 1)\\,\\Delta p / Q^2

    (``(aQ + 2bQ^2)/(aQ + bQ^2) = n`` at the point). The two-term form keeps the kernel's
    laminar/inertial split: below the point the linear part takes over, as the laminar
    range of ``Buildings.Fluid.FixedResistances.PressureDrop`` does. Against the power
    law ``dp (Q/Q0)^n`` it is within 4 % over 0.5-2 Q0 for n = 1.85.
    """
    if not 1.0 <= exponent <= 2.0:
        raise ValueError("a flow exponent between 1 (laminar) and 2 (inertial) is needed")
    return (2.0 - exponent) * dp_pa / flow_m3s, (exponent - 1.0) * dp_pa / flow_m3s**2


def fit_dp_coefficients(dp_func, q_nominal_m3s, q_range=(0.05, 3.0), n=24):
    """Fit ``dp = a (mu/mu_ref) Q + b Q|Q|`` to a pressure-drop function of flow.

    Returns ``(a, b, max_rel_error)``. The fit is weighted to relative error over
    ``q_range`` times the nominal flow. The kernels evaluate this form (cheap, smooth,
    monotone); ``fluids`` is only called here, at build time.
    """
    q = np.geomspace(q_range[0], q_range[1], n) * q_nominal_m3s
    dp = np.array([dp_func(x) for x in q])
    if np.all(dp == 0.0):
        return 0.0, 0.0, 0.0
    a_mat = np.column_stack([q, q * q]) / dp[:, None]
    coef = _nnls2(a_mat, np.ones_like(q))
    fit = coef[0] * q + coef[1] * q * q
    return float(coef[0]), float(coef[1]), float(np.max(np.abs(fit / dp - 1.0)))


def _nnls2(a, y):
    """Non-negative least squares for two unknowns, by enumerating the active sets (the
    solution of an NNLS problem is the unconstrained solution on its free variables;
    Lawson & Hanson, *Solving Least Squares Problems*, 1974, ch. 23 [LAWSON74]). Equivalent to
    ``scipy.optimize.nnls`` here, without importing scipy.optimize (~0.4 s) at start-up."""
    best, best_res = np.zeros(2), float(np.sum(y * y))
    candidates = [np.linalg.lstsq(a, y, rcond=None)[0]]
    for j in range(2):
        col = a[:, j]
        x = np.zeros(2)
        x[j] = float(col @ y) / float(col @ col)
        candidates.append(x)
    for x in candidates:
        if np.all(x >= 0.0):
            res = float(np.sum((a @ x - y) ** 2))
            if res < best_res:
                best, best_res = x, res
    return best
