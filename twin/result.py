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
        """Write the run's telemetry to ``path`` (copied if it was streamed elsewhere)."""
        import shutil

        import h5py
        if self._memfile is not None:
            with h5py.File(path, "w") as dst:
                for k, v in self._memfile.attrs.items():
                    dst.attrs[k] = v
                for key in self._memfile:
                    self._memfile.copy(self._memfile[key], dst, name=key)
        elif self.telemetry_path is not None and str(path) != str(self.telemetry_path):
            shutil.copyfile(self.telemetry_path, path)

    def telemetry(self, require=None):
        """The telemetry as a :class:`twin.telemetry.Telemetry` (``require``: as
        :func:`twin.telemetry.read_telemetry`'s; ``()`` for a run that kept a few channels)."""
        if self._memfile is not None:
            return _read_open(self._memfile, "<memory>", require)
        from .telemetry import read_telemetry
        return read_telemetry(self.telemetry_path, require)
