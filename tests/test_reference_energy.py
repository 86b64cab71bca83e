"""Energy conservation, stated component by component, over a transient: every cold-plate
path, every coolant edge, the heat exchanger, every mixing node and the loop as a whole
close their balances at every step, with the heat stored in junctions, plates and coolant
counted. The reference is conservation itself; the model supplies only its state and its
capacities."""
import numpy as np
import pytest

import twin
from twin.build import LPM, build_model
from twin.engine import Network, _empty_records, steady_state
from twin.kernels import thermal as tk
from twin.workload import make_source

from .conftest import REFERENCE, ROOT

# The scheme is exact for inputs held over a step and hands on step-mean enthalpy flows,
# so each balance closes to round-off: a few dozen terms, each rounded to ~1e-16 of its
# size, the largest being a component's stored energy C T referred to 0 degC. Residuals
# are measured against C T_max + mcp dt T_max of the component; 1e-13 leaves room for
# ~1000 roundings.
ROUNDOFF_RTOL = 1e-13
STEPS = 200


@pytest.fixture(scope="module", params=["plates in series", "a plate per path"])
def transient(request):
    """A rack stepped one thermal step at a time through a power transient: 1 Hz GPU bursts
    from t = 2 s, a drop to 15 % at 10 s (plates and junctions charge and discharge),
    hydraulics re-solved as temperatures move. The reference rack (GPU-GPU-CPU paths), and
    the same rack with every compute-tray plate on a path of its own, so that each plate's
    balance is seen alone. Returns per-step records of the state before and after each
    step."""
    over = {"workload.schedule.1.start_s": 2.0, "workload.schedule.1.end_s": 10.0,
            "workload.schedule.2.start_s": 10.0, "simulation.hydraulic_update_s": 1.0}
    if request.param == "a plate per path":
        over["rack.tray_types.compute.paths"] = [["gpu"], ["gpu"], ["gpu"], ["gpu"], ["cpu"], ["cpu"]]
    s = twin.load_scenario(REFERENCE, over)
    model = build_model(s)
    dt = s.simulation.time_step_s
    source = make_source(model, dt)
    net = Network(model)
    state = steady_state(net, source)
    wl = source.kernel
    rec = _empty_records(model, 0, wl.jp.shape[0])
    block = int(round(s.simulation.hydraulic_update_s / dt))
    steps = []
    for step in range(STEPS):
        if step % block == 0:
            # (before is taken after a re-solve: one moves the held loop flow by up to
            # FLOW_CONTROL_RTOL, and with it the transit packet of the last test)
            net.refresh(state, dt)
            demand = source.block(step * dt, dt, block)
        before = dict(chip_x=state.chip_x.copy(), cell_t=state.cell_t.copy(), acc=state.acc.copy(),
                      stored=net.stored_energy(state, dt))
        i = step % block
        net.advance(state, dt, step, 1, 10**9, demand.chip, rec, wl, row=demand.row[i:i + 1])
        after = dict(chip_x=state.chip_x.copy(), cell_t=state.cell_t.copy(), acc=state.acc.copy(),
                     stored=net.stored_energy(state, dt), node_t=state.node_t.copy(), edge_out=state.edge_out.copy(),
                     edge_mcp=net.edge_mcp.copy())
        steps.append((before, after))
    return model, net, dt, steps


def _delta_acc(before, after, i):
    return after["acc"][i] - before["acc"][i]


def _chip_storage(model, net, chips, before, after):
    """Change of the heat held by the chips' junctions, plate bodies and plate coolant [J]."""
    cell_of_chip = np.empty(model.n_chips, dtype=np.int64)
    plates = np.nonzero(model.cell_chip >= 0)[0]
    cell_of_chip[model.cell_chip[plates]] = plates
    cells = cell_of_chip[chips]
    d = after["chip_x"][chips] - before["chip_x"][chips]
    solid = model.chip_cj[chips] * d[:, 0] + model.chip_cb[chips] * d[:, 1]
    return solid, net.cell_c[cells] * d[:, 2]


def test_every_cold_plate_path_turns_chip_power_into_coolant_heat_and_storage(transient):
    """Per path of plates (GPU-GPU-CPU in series in the reference compute trays; one plate
    per path in its switch trays, and everywhere in the second rack: each plate alone):
    chip energy in = heat carried off by the coolant
    (``mcp (T_out - T_in) dt`` with the path's step-mean outflow and inflow) + the change of
    heat in junctions, plate bodies and plate coolant. And the kernel's 'heat into the
    coolant' (``rack/liquid_heat``) is the chip energy less what junctions and plate bodies
    stored.

    Catches: a plate map whose coolant row does not conserve (a wrong ``gam`` or ``lam``
    entry), heat into the coolant counted without the coolant's own storage, a plate whose
    outflow is not what the next plate of its path receives."""
    model, net, dt, steps = transient
    paths = np.unique(model.chip_path_edge)
    chips_of = {e: np.nonzero(model.chip_path_edge == e)[0] for e in paths}
    worst = 0.0
    for before, after in steps:
        t_max = max(after["chip_x"].max(), after["cell_t"].max())
        mcp, t_in = after["edge_mcp"], after["node_t"][model.edge_from]
        liquid = 0.0
        for e in paths:
            chips = chips_of[e]
            energy = np.sum(after["acc"][tk.ACC_CHIPS + chips] - before["acc"][tk.ACC_CHIPS + chips])
            solid, coolant = _chip_storage(model, net, chips, before, after)
            carried = mcp[e] * (after["edge_out"][e] - t_in[e]) * dt
            scale = (np.sum(model.chip_cj[chips] + model.chip_cb[chips])
                     + np.sum(net.cell_c[model.edge_cell_ptr[e]:model.edge_cell_ptr[e + 1]]) + mcp[e] * dt) * t_max
            worst = max(worst, abs(energy - carried - solid.sum() - coolant.sum()) / scale)
            liquid += energy - solid.sum()
        liquid += _delta_acc(before, after, tk.ACC_AUX_LIQUID_J)
        total_c = (np.sum(model.chip_cj + model.chip_cb) + np.sum(net.cell_c)) * t_max
        assert _delta_acc(before, after, tk.ACC_LIQUID_J) == pytest.approx(liquid, abs=ROUNDOFF_RTOL * total_c)
    assert worst < ROUNDOFF_RTOL
    # the transient is real: junctions and plates took and gave back heat
    first, last = steps[0][0], steps[-1][1]
    assert np.ptp([a["chip_x"][0, 0] for _, a in steps]) > 5.0
    assert last["stored"] < first["stored"] - 1e5


def test_every_coolant_edge_the_heat_exchanger_and_every_node_close(transient):
    """Per coolant edge (hoses, header segments, tray tubing, reservoir): the change of heat
    in its cells = ``mcp (T_in - T_out) dt``, plus the trays' auxiliary heat for the tray
    return tubing (in total: the kernel's aux-to-liquid energy). The heat exchanger edge:
    the secondary side's enthalpy drop = the heat the facility side takes (``cdu/heat``,
    which sets ``facility/return_temp``) + the change of heat in the exchanger's volume.
    Every node where flows mix: enthalpy in = enthalpy out. The loop: chip energy + aux heat
    into the liquid - heat to the facility = change of all stored heat (the one-step
    transit at the loop's closure included).

    Catches: a cell handing on its end-of-step temperature (the edge balance fails by C dT
    at once), a mixing node that leaves out an inflow or weights it by another edge's
    flow, aux heat put in a cell and not counted (or counted twice), a heat exchanger whose
    facility-side heat is not what the secondary side lost."""
    model, net, dt, steps = transient
    fluid = model.cell_kind == tk.FLUID
    edges = [e for e in range(model.edge_from.size)
             if model.edge_cell_ptr[e + 1] > model.edge_cell_ptr[e]
             and not np.any(model.cell_kind[model.edge_cell_ptr[e]:model.edge_cell_ptr[e + 1]] == tk.PLATE)]
    mixing = [n for n in range(len(model.node_names)) if np.sum(model.edge_to == n) > 1]
    worst = dict(edge=0.0, aux=0.0, hx=0.0, node=0.0, loop=0.0)
    for before, after in steps:
        t_max = max(after["chip_x"].max(), after["cell_t"].max())
        mcp, t_in, out = after["edge_mcp"], after["node_t"][model.edge_from], after["edge_out"]
        aux_residual, aux_scale = -_delta_acc(before, after, tk.ACC_AUX_LIQUID_J), 0.0
        for e in edges:
            cells = np.arange(model.edge_cell_ptr[e], model.edge_cell_ptr[e + 1])
            cells = cells[fluid[cells]]
            stored = np.sum(net.cell_c[cells] * (after["cell_t"][cells] - before["cell_t"][cells]))
            carried = mcp[e] * (t_in[e] - out[e]) * dt
            scale = (np.sum(net.cell_c[cells]) + mcp[e] * dt) * t_max
            if e == model.edge["hx"]:
                facility = _delta_acc(before, after, tk.ACC_HX_J)
                worst["hx"] = max(worst["hx"], abs(carried - facility - stored) / scale)
            elif np.any(model.cell_aux[cells] >= 0):
                aux_residual += stored - carried
                aux_scale += scale
            else:
                worst["edge"] = max(worst["edge"], abs(stored - carried) / scale)
        worst["aux"] = max(worst["aux"], abs(aux_residual) / aux_scale)
        for n in mixing:
            ins, outs = model.edge_to == n, model.edge_from == n
            enthalpy_in = np.sum(mcp[ins] * out[ins])
            worst["node"] = max(worst["node"], abs(enthalpy_in - after["node_t"][n] * np.sum(mcp[outs]))
                                / (np.sum(mcp[ins]) * t_max))
        sources = (_delta_acc(before, after, tk.ACC_CHIP_J) + _delta_acc(before, after, tk.ACC_AUX_LIQUID_J)
                   - _delta_acc(before, after, tk.ACC_HX_J))
        worst["loop"] = max(worst["loop"], abs(after["stored"] - before["stored"] - sources) / abs(after["stored"]))
    assert max(worst.values()) < ROUNDOFF_RTOL, worst
    assert len(mixing) >= 2 * (len(model.tray_names) - 1)  # the headers' tees were checked


def test_a_loop_flow_change_costs_at_most_one_step_of_transit_enthalpy():
    """KNOWN LIMITATION, bounded. The loop closes at the reservoir with the previous step's
    return-hose outflow (docs/model.md): the hose sends ``Q_old dt`` of coolant, the
    reservoir takes ``Q_new dt``. When the loop flow changes, the difference, ``(Q_old -
    Q_new) dt`` at the return temperature, appears or vanishes: energy referred to 0 degC
    is not conserved by ``rho cp |dQ| dt T_return`` per change (the temperatures move by
    far less: the packet is at the temperature of the cell that misses it). A CDU trip with
    the pumps lost stops 150 L/min at once: 44 kJ, 0.7 % of the run's heat. The bound: the
    closure error of the whole run is at most one such packet at the largest loop flow and
    coolant temperature.

    Catches: an error that accumulates step after step or exceeds the transit packet,
    e.g. a reservoir that keeps taking the return hose's last outflow after the flow has
    stopped."""
    s = twin.load_scenario(ROOT / "scenarios" / "faults" / "cdu-trip.toml",
                           {"faults.0.pumps_run": False, "simulation.duration_s": 70.0})
    r = twin.simulate(s)
    e = r.energy
    error = (e["stored_end_j"] - e["stored_start_j"]) - (e["chip_j"] + e["aux_liquid_j"] - e["hx_j"])
    tel = r.telemetry()
    q_max = tel["rack/flow"].max() * LPM
    packet = r.model.rho * r.model.cp * q_max * s.simulation.time_step_s * r.margins["coolant_temp_max_c"]
    assert abs(error) <= packet
