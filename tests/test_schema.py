"""`twin schema`: the JSON Schema of the scenario format, checked with the jsonschema
package against the repository's scenario files (as written, and resolved), against
planted faults, and against the copy kept in schemas/."""
import copy
import functools
import json
import subprocess
import sys
import tomllib

import jsonschema
import pytest

from twin.catalogue import entries
from twin.scenario import json_schema
from twin.sources import gather

from .conftest import ROOT

SCHEMA_FILE = ROOT / "schemas" / "scenario.schema.json"
SCENARIO_FILES = sorted((ROOT / "scenarios").rglob("*.toml"))


@functools.lru_cache(maxsize=None)
def _validator(resolved=False):
    schema = json_schema(resolved)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, data):
    return [(list(e.absolute_path), e.validator) for e in validator.iter_errors(data)]


def _reference():
    with open(ROOT / "scenarios" / "reference-w32.toml", "rb") as fh:
        return tomllib.load(fh)


def test_the_schema_kept_in_the_repository_is_current():
    assert SCHEMA_FILE.read_text() == json.dumps(json_schema(), indent=2, allow_nan=False) + "\n", \
        "schemas/scenario.schema.json is stale: run `twin schema -o schemas/scenario.schema.json`"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_every_scenario_file_as_written_validates(path):
    """Runnable scenarios and the parts they include (a rack file holds only [rack])."""
    with open(path, "rb") as fh:
        assert _errors(_validator(), tomllib.load(fh)) == []


def test_every_catalogue_scenario_resolved_validates_with_its_required_keys():
    validator = _validator(resolved=True)
    names = entries(ROOT / "scenarios")
    assert len(names) >= 10
    for name, path, _ in names:
        assert _errors(validator, gather(path).data) == [], name


def test_a_wrong_type_a_value_out_of_range_an_unknown_key_and_a_bad_choice_fail():
    validator = _validator()
    data = _reference()
    assert _errors(validator, data) == []
    cases = {
        ("simulation", "duration_s"): ("600", "type"),    # text for a number
        ("coolant", "name"): ("glycol", "enum"),           # not one of the coolants
        ("simulation", "duraton_s"): (600.0, "additionalProperties"),  # misspelt key
    }
    for (table, key), (value, rule) in cases.items():
        bad = copy.deepcopy(data)
        bad.setdefault(table, {})[key] = value
        found = _errors(validator, bad)
        assert found and all(r == rule for _, r in found), (key, found)
    bad = copy.deepcopy(data)
    bad["facility"] = {"flow_lpm": 0.5}  # below 1 L/min, the field's Bounds
    assert _errors(validator, bad) == [(["facility", "flow_lpm"], "minimum")]
    bad["facility"] = {"flow_lpm": True}  # TOML booleans are not numbers
    assert _errors(validator, bad) == [(["facility", "flow_lpm"], "type")]
    # a file may leave a table to its includes; the resolved scenario may not
    assert "cdu" not in data and _errors(validator, data) == []
    missing = [e.message for e in _validator(True).iter_errors(data) if e.validator == "required"]
    assert any("'cdu'" in m for m in missing) and any("'facility'" in m for m in missing)


def test_the_schema_gives_units_ranges_and_descriptions():
    defs = json_schema()["$defs"]
    flow = defs["Facility"]["properties"]["flow_lpm"]
    assert flow["units"] == "L/min" and flow["minimum"] == 1 and "facility water" in flow["description"]
    assert defs["Facility"]["properties"]["supply_temp_c"]["units"] == "degC"  # from the field's name
    assert defs["Fault"]["properties"]["end_s"]["units"] == "s"
    assert "maximum" not in defs["Fault"]["properties"]["end_s"]  # inf means never: no JSON maximum
    assert json_schema()["properties"]["include"]["anyOf"][0] == {"type": "string"}
    assert "include" not in json_schema(resolved=True)["properties"]


def test_twin_schema_prints_and_writes_the_schema(tmp_path):
    def twin(*args):
        return subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    p = twin("schema")
    assert p.returncode == 0 and p.stdout == SCHEMA_FILE.read_text()
    out = tmp_path / "sub" / "resolved.json"
    p = twin("schema", "--resolved", "-o", out)
    assert p.returncode == 0 and json.loads(out.read_text()) == json_schema(resolved=True)
    p = twin("schema", "-o", tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and len(p.stderr.splitlines()) == 1
