"""Every W&B sweep under experiments/sweeps/ turns into CLI arguments the CLI accepts, so a sweep
cannot die on a typo after a day in the queue."""
from pathlib import Path

import pytest
import yaml

from sslzoo.cli import build_cli

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))


def _values(spec: dict) -> list:
    """The values a sweep parameter can take: its list, or the ends of its range."""
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]


def _dotted(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def test_there_are_sweeps():
    assert {p.stem for p in SWEEPS} >= {"fixmatch", "simmatch", "suave", "scan"}


@pytest.mark.parametrize("sweep", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_sweep_value_is_accepted_by_the_cli(sweep, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the sweep commands name configs relative to the repository
    spec = yaml.safe_load(sweep.read_text())
    command = spec["command"]
    assert command[:3] == ["${env}", "sslzoo", "fit"] and command[-1] == "${args}"
    fixed = command[3:-1]
    for key, parameter in spec["parameters"].items():
        for value in _values(parameter):
            # W&B's ${args} passes each parameter as --key=value.
            with pytest.raises(SystemExit) as stop:
                build_cli(["fit", *fixed, f"--{key}={value}", "--print_config"])
            assert stop.value.code in (None, 0)
            printed = yaml.safe_load(capsys.readouterr().out)
            assert _dotted(printed, key) == pytest.approx(value), f"{sweep.name}: {key}={value}"
