"""The pictures (twin plot, twin report, twin compare on results files), drawn from a real
simulated file and from a measured-style file with NaN gaps and only some channels."""
import base64
import re
import subprocess
import sys
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import twin
from twin import plots
from twin.cli import cli
from twin.telemetry import SCHEMA

from .conftest import ROOT

PUMP_TRIP = ROOT / "scenarios" / "faults" / "pump-trip-n1.toml"
UNIT = re.compile(r"[\[(][^\])]+[\])]")


def _run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def assert_clean_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], lines[0]


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    """A pump trip at 5 s of a 15 s run: a fault event to mark, every channel of a simulation."""
    out = tmp_path_factory.mktemp("plots") / "trip.h5"
    s = twin.load_scenario(PUMP_TRIP, {"simulation.duration_s": 15.0, "faults": [
        {"kind": "pump_trip", "target": "cdu/pump0", "start_s": 5.0}]})
    twin.simulate(s, output=out, provenance=dict(source=str(PUMP_TRIP), overrides=["simulation.duration_s=15"]))
    return out


@pytest.fixture(scope="module")
def failing_file(tmp_path_factory):
    """The reference rack judged against a return limit it cannot keep: one margin fails."""
    out = tmp_path_factory.mktemp("plots") / "tight.h5"
    s = twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml",
                           {"simulation.duration_s": 5.0, "margins.rack_return_temp_max_c": 40.0})
    twin.simulate(s, output=out)
    return out


@pytest.fixture(scope="module")
def measured_file(tmp_path_factory):
    """As `twin import` writes: measured = true, no scenario or margins, some channels, NaN gaps."""
    out = tmp_path_factory.mktemp("plots") / "measured.h5"
    t = np.arange(120.0)
    supply = 32.0 + 0.01 * t
    supply[40:60] = np.nan
    tj = 45.0 + 20.0 * (t[:, None] > 30) + np.arange(3)[None, :]
    tj[70:80, 1] = np.nan
    tj[90:95, :] = np.nan
    with h5py.File(out, "w") as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["measured"] = True
        f.attrs["source"] = "logger.csv"
        f.create_dataset("time", data=t).attrs["units"] = "s"
        for name, data in (("rack/supply_temp", supply), ("rack/return_temp", supply + 8.0),
                           ("gpu/junction_temp", tj)):
            f.create_dataset(name, data=data).attrs["units"] = "degC"
        f.create_dataset("gpu/labels", data=np.array(["rack01/tray00/gpu0", "rack01/tray00/gpu1",
                                                      "rack01/tray00/gpu2"], dtype=h5py.string_dtype()))
    return out


def _check_units(fig):
    """Every axes: an x and a y label with a unit in brackets; a colour bar: its label."""
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert UNIT.search(ax.get_ylabel()), f"colour bar without a unit: {ax.get_ylabel()!r}"
            continue
        assert UNIT.search(ax.get_xlabel()), f"{ax.get_title()!r}: x label {ax.get_xlabel()!r}"
        assert UNIT.search(ax.get_ylabel()), f"{ax.get_title()!r}: y label {ax.get_ylabel()!r}"
        assert ax.get_title() or fig.get_suptitle()


def _hlines(ax):
    """y of the horizontal lines (limits) drawn on an axes."""
    return [float(ln.get_ydata()[0]) for ln in ax.get_lines()
            if len(set(np.asarray(ln.get_ydata(), dtype=float))) == 1 and len(ln.get_ydata()) == 2]


def test_every_figure_of_a_simulated_run_labels_its_axes_with_units(sim_file):
    run = plots.load_run(sim_file)
    drawn = {kind: fig for kind, fig, _ in plots.figures(run)}
    assert set(drawn) == set(plots.KINDS) and all(f is not None for f in drawn.values())
    for kind, fig in drawn.items():
        _check_units(fig)
    # the pump trip is marked on the time axes of the pumps
    texts = [t.get_text() for ax in drawn["cdu"].axes for t in ax.texts]
    assert "pump_trip cdu/pump0" in texts and "failover cdu1/pump1" in texts, texts


def test_the_junction_map_draws_the_throttle_temperature_of_the_scenario(sim_file):
    run = plots.load_run(sim_file)
    throttle = run.model().scenario.rack.chip_types["gpu"].throttle_temp_c
    fig = plots.fig_junction(run)
    heat, lines, bar = fig.axes[0], fig.axes[1], next(a for a in fig.axes if a.get_label() == "<colorbar>")
    assert throttle in _hlines(lines) and throttle in _hlines(bar)
    assert bar.get_ylim()[1] >= throttle  # the limit is on the colour scale, not off it
    # rows named by instance path, not crowded: every 4th of the 72 GPUs (the first of each tray)
    names = [t.get_text() for t in heat.get_yticklabels()]
    assert names == run.tel.labels["gpu/labels"][::4] and len(names) == 18
    # the image is the per-interval peak, GPU by time
    img = heat.get_images()[0].get_array()
    assert img.shape == run.tel["gpu/junction_temp_max"].T.shape
    assert np.allclose(img, run.tel["gpu/junction_temp_max"].T)


def test_the_tray_requirement_is_the_one_the_margin_judges(sim_file):
    """The flow each tray needs, derived from the scenario in the file at the recorded supply
    temperature, gives back the run's tray_flow_ratio_min and its note's requirement."""
    run = plots.load_run(sim_file)
    req, note = plots.tray_required(run)
    assert note == ""
    flow = run.tel["tray/flow"]
    margin = run.margin("tray_flow_ratio_min")
    assert np.nanmin(flow / req) == pytest.approx(margin["value"], rel=1e-6)  # the file holds float32
    j = run.tel.labels["tray/labels"].index(margin["instance"])
    required = float(re.search(r"vs ([\d.]+) required", margin["note"]).group(1))
    k = int(np.argmin(flow[:, j] / req[:, j]))
    assert req[k, j] == pytest.approx(required, abs=0.005)
    # the figure draws that requirement at the binding instant, one marker per tray
    fig = plots.fig_trays(run)
    marks = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("required")]
    assert len(marks) == 1
    k = int(np.argmin(np.min(flow / req, axis=1)))
    assert np.allclose(marks[0].get_ydata(), req[k])
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx(list(flow[k]))


def test_the_margin_summary_draws_each_limit_and_colours_by_status(failing_file):
    run = plots.load_run(failing_file)
    fig = plots.fig_margins(run)
    judged = [r for r in run.margins if r["status"]]
    assert len(fig.axes) == len(judged)
    _check_units(fig)
    import matplotlib.colors as mc
    for ax, r in zip(fig.axes, judged):
        assert r["name"] in ax.get_ylabel()
        limits = [float(ln.get_xdata()[0]) for ln in ax.get_lines()]
        assert limits == [r["limit"]]
        bar = ax.patches[0]
        assert bar.get_width() == pytest.approx(r["value"])
        assert mc.same_color(bar.get_facecolor(), plots.STATUS_COLOURS[r["status"]]), r["name"]
    assert run.margin("rack_return_temp_max_c")["status"] == "fail"


def test_a_measured_file_gives_the_figures_it_has_data_for(measured_file, tmp_path):
    code, out, err = _run("plot", measured_file, "-o", tmp_path)
    assert code == 0, err
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["rack"] == str(tmp_path / "measured-rack.png")
    assert lines["junction"] == str(tmp_path / "measured-junction.png")
    assert lines["trays"].startswith("skipped (tray/flow")
    assert lines["cdu"].startswith("skipped (cdu/pump_speed")
    assert lines["margins"] == "skipped (margins/verdicts: measured telemetry holds no margins)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measured-junction.png", "measured-rack.png"]
    run = plots.load_run(measured_file)
    for fig in (plots.fig_rack(run), plots.fig_junction(run)):
        _check_units(fig)
    # no scenario, no throttle limit: said in the title, not invented
    assert "throttle temperature not drawn: no scenario" in plots.fig_junction(run).axes[0].get_title()
    # the gap stays a gap: the image holds NaN where the file does
    img = plots.fig_junction(run).axes[0].get_images()[0].get_array()
    assert np.ma.getmaskarray(img)[1, 70:80].all() or np.isnan(np.asarray(img, dtype=float)[1, 70:80]).all()


def test_an_explicit_kind_without_data_is_an_error_naming_file_and_channel(measured_file, tmp_path):
    code, _, err = _run("plot", measured_file, "--kind", "trays", "-o", tmp_path)
    assert_clean_error(code, err, measured_file, "tray/flow")
    code, _, err = _run("plot", measured_file, "--kind", "margins", "-o", tmp_path)
    assert_clean_error(code, err, measured_file, "margins/verdicts")
    assert not list(tmp_path.iterdir())
    code, out, err = _run("plot", measured_file, "--kind", "rack", "-o", tmp_path / "one.png")
    assert code == 0 and (tmp_path / "one.png").read_bytes()[:8] == plots.PNG_MAGIC


@pytest.mark.parametrize("make, needle", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_text("time,value\n1,2\n"), "not an HDF5 file"),
    (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64), "not a readable HDF5 file"),
    (lambda p: h5py.File(p, "w").close(), "schema"),
    (lambda p: p.mkdir(), "not a regular file"),
])
@pytest.mark.parametrize("command", ["plot", "report", "compare"])
def test_bad_results_files_exit_2_on_one_line(tmp_path, make, needle, command):
    bad = tmp_path / "bad.h5"
    make(bad)
    args = [command, bad] + ([bad] if command == "compare" else [])
    code, _, err = _run(*args)
    assert_clean_error(code, err, bad, needle)


def test_plot_refuses_several_kinds_into_one_png_and_an_existing_other_file(sim_file, tmp_path):
    code, _, err = _run("plot", sim_file, "-o", tmp_path / "all.png")
    assert_clean_error(code, err, "all.png", "one --kind")
    precious = tmp_path / "notes.png"
    precious.write_text("not an image")
    code, _, err = _run("plot", sim_file, "--kind", "rack", "-o", precious)
    assert_clean_error(code, err, "notes.png", "refusing to overwrite")
    assert precious.read_text() == "not an image"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.refs, self.pre, self.rows = [], [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if k in a and tag != "img":
                self.refs.append(a[k])
        if tag == "link":
            self.refs.append(a.get("href", "link"))
        if tag in ("pre", "td"):
            self._in = tag
            (self.pre if tag == "pre" else self.rows).append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "pre":
            self.pre[-1] += data
        elif self._in == "td":
            self.rows[-1] += data


def _png_srcs(page):
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == plots.PNG_MAGIC


def test_the_report_is_one_self_contained_page(sim_file, tmp_path):
    # a scenario text that would break out of the <pre> if it were not escaped
    f = tmp_path / "run.h5"
    f.write_bytes(sim_file.read_bytes())
    with h5py.File(f, "a") as h:
        h.attrs["scenario"] = h.attrs["scenario"] + '\n# </pre><script>alert("x")</script> & <img src="x.png">\n'
    code, out, err = _run("report", f)
    assert code == 0, err
    html = (tmp_path / "run.html").read_text()
    page = _Page()
    page.feed(html)
    assert len(page.imgs) == len(plots.KINDS)
    _png_srcs(page)
    assert page.refs == [] and "script" not in page.tags
    with h5py.File(f, "r") as h:
        assert page.pre == [h.attrs["scenario"]]
    run = plots.load_run(f)
    for r in run.margins:  # every margin in the table, with its status and instance
        assert r["name"] in page.rows
    assert "pump_head_margin_kpa" in page.rows and "cdu" in page.rows
    assert "simulation.duration_s=15" in html and "verdict: OK" in html
    # a second report replaces the first; any other file is left alone
    assert _run("report", f)[0] == 0
    other = tmp_path / "mine.html"
    other.write_text("<html>my notes</html>")
    code, _, err = _run("report", f, "-o", other)
    assert_clean_error(code, err, "mine.html", "refusing to overwrite")
    assert other.read_text() == "<html>my notes</html>"


def test_the_report_of_a_measured_file_says_what_it_lacks(measured_file, tmp_path):
    code, out, err = _run("report", measured_file, "-o", tmp_path / "m.html")
    assert code == 0, err
    page = _Page()
    page.feed((tmp_path / "m.html").read_text())
    assert len(page.imgs) == 2
    _png_srcs(page)
    html = (tmp_path / "m.html").read_text()
    assert "measured telemetry holds no margins" in html and "trays: tray/flow" in html


def test_compare_prints_margins_side_by_side_and_plots_both(sim_file, failing_file, tmp_path):
    code, out, err = _run("compare", sim_file, failing_file, "--plot", tmp_path / "c.png")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["margin", "unit", "limit", "trip", "tight"]
    row = next(line for line in lines if line.startswith("rack_return_temp_max_c"))
    a, b = plots.load_run(sim_file), plots.load_run(failing_file)
    va, vb = a.margin("rack_return_temp_max_c")["value"], b.margin("rack_return_temp_max_c")["value"]
    assert f"{va:.3f} ok" in row and f"{vb:.3f} fail" in row and f"{vb - va:+.3f}" in row
    assert "40/65" in row  # the two limits
    assert lines[-2] == "verdict: trip OK, tight FAIL"
    assert (tmp_path / "c.png").read_bytes()[:8] == plots.PNG_MAGIC
    fig = plots.fig_compare([a, b], ["trip", "tight"])
    _check_units(fig)
    labels = [ln.get_label() for ln in fig.axes[1].get_lines()]
    assert "trip hottest GPU" in labels and "tight hottest GPU" in labels
    assert a.model().scenario.rack.chip_types["gpu"].throttle_temp_c in _hlines(fig.axes[1])


def test_compare_says_which_file_ended_early_and_that_the_spans_differ(sim_file, tmp_path):
    """A CDU trip whose coolant boils at 530 s against a 15 s pump trip. Catches: the
    margins of a run stopped at a model limit (and of runs over 530 s and 15 s) set side
    by side with nothing said but each file's verdict."""
    boil = tmp_path / "boil.h5"
    twin.simulate(twin.load_scenario(ROOT / "scenarios" / "faults" / "cdu-trip.toml"), output=boil)
    code, out, err = _run("compare", sim_file, boil)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == "verdict: trip OK, boil FAIL"
    ended = [line for line in lines if line.startswith("boil: run ended early: ")]
    assert len(ended) == 1 and "coolant_boiling" in ended[0] and "530 s" in ended[0], out
    assert not any(line.startswith("trip: run ended early") for line in lines)
    assert "simulated spans differ: trip 15 s, boil 530 s of 900 s" in out


def test_a_one_sample_file_draws_its_sample_as_a_visible_mark(tmp_path):
    """A 1 s run has one output row. Catches: each series drawn as a line of one point,
    which matplotlib renders as nothing (empty axes under a legend)."""
    one = tmp_path / "one.h5"
    twin.simulate(twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml", {"simulation.duration_s": 1.0}),
                  output=one)
    run = plots.load_run(one)
    drawn = 0
    for kind, fig, _ in plots.figures(run, ["rack", "junction", "cdu"], True):
        for ax in fig.axes:
            for line in ax.get_lines():
                x = np.atleast_1d(line.get_xdata())
                if x.size == 1 and line.get_label() and not line.get_label().startswith("_"):
                    assert line.get_marker() not in (None, "None", "", " "), (kind, line.get_label())
                    drawn += 1
    assert drawn >= 8  # IT power, heats, temperatures, flows, pumps, the hottest GPU
    fig = plots.fig_compare([run, run], ["a", "b"])
    assert all(ln.get_marker() not in (None, "None", "", " ") for ax in fig.axes for ln in ax.get_lines()
               if np.atleast_1d(ln.get_xdata()).size == 1 and not ln.get_label().startswith("_"))


def test_compare_keeps_scenarios_apart_from_results(sim_file):
    code, _, err = _run("compare", "reference-w32", "--plot", "x.png")
    assert_clean_error(code, err, "--plot", "results files")
    code, _, err = _run("compare", "reference-w32", sim_file)
    assert_clean_error(code, err, "reference-w32", "not both")
    code, _, err = _run("compare", sim_file, sim_file, "--facility", 45)
    assert_clean_error(code, err, "--facility")
    code, _, err = _run("compare", sim_file)
    assert_clean_error(code, err, "two results files")


def test_help_and_run_do_not_import_matplotlib(tmp_path):
    out = tmp_path / "r.h5"
    for args in (["--help"], ["plot", "--help"], ["run", str(ROOT / "scenarios" / "reference-w32.toml"),
                                                  "--duration", "2", "-o", str(out)]):
        code = ("import sys\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
                "print('loaded:', 'matplotlib' in sys.modules)" % (args,))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert p.stdout.splitlines()[-1] == "loaded: False", (args, p.stdout[-300:], p.stderr[-300:])
    assert out.exists()
