"""What a run returns: :class:`Result`, its margins, energy balance, final state and telemetry."""
from __future__ import annotations

from dataclasses import dataclass, field

from .build import Model
from .margins import Margins
from .network import Hydraulics, NetworkState
from .scenario import Scenario
from .telemetry import _read_open


@dataclass
class Result:
    """Outcome of a run: margins, steady figures and the telemetry."""

    scenario: Scenario
    model: Model
    margins: dict
    margin_table: Margins
    energy: dict
    final_state: NetworkState
    jobs: list = field(default_factory=list)
    events: list = field(default_factory=list)
    hydraulics: Hydraulics | None = None  # the network's last solution (flows per edge)
    telemetry_path: str | None = None
    _memfile: object = field(default=None, repr=False)
    end: object = None  # RunEnd: completed, interrupted or stopped at a model limit

    def to_hdf5(self, path) -> None:
        """Write the run's telemetry to ``path`` (copied if it was streamed elsewhere),
        whole (through ``PATH.partial``); a directory or an existing file that is not a
        results file raises :class:`twin.TwinInputError`, as ``twin run -o`` does."""
        import os
        import shutil
        from pathlib import Path

        from .files import _same, check_output, writing

        if self._memfile is None and (self.telemetry_path is None or _same(path, self.telemetry_path)):
            return
        check_output(path, {}, "path")
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        with writing(path, "path"):
            if self._memfile is not None:  # the file's image: its dimension scales' references stay whole
                self._memfile.flush()
                tmp.write_bytes(self._memfile.id.get_file_image())
            else:
                shutil.copyfile(self.telemetry_path, tmp)
            os.replace(tmp, path)

    def telemetry(self, require=None):
        """The telemetry as a :class:`twin.telemetry.Telemetry` (``require``: as
        :func:`twin.telemetry.read_telemetry`'s; ``()`` for a run that kept a few channels)."""
        if self._memfile is not None:
            return _read_open(self._memfile, "<memory>", require)
        from .telemetry import read_telemetry
        return read_telemetry(self.telemetry_path, require)

    def to_xarray(self):
        """The telemetry as an :class:`xarray.Dataset` (:func:`twin.pydata.to_dataset`:
        labelled member dimensions, ``units`` attributes, the file's root attributes)."""
        from .pydata import to_dataset

        return to_dataset(self.telemetry(require=()))

    def margins_frame(self):
        """The margins as a :class:`pandas.DataFrame` (:func:`twin.pydata.margins_frame`)."""
        from .pydata import margins_frame

        return margins_frame(self)
