"""The README's Python example runs as written (shortened to two steps) and gets what the CLI adds."""
from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text().split("### The same run from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_with_the_clis_callbacks(tmp_path, monkeypatch, capsys):
    code = python_example()
    assert len(code.strip().splitlines()) <= 14
    assert "max_steps=500" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("max_steps=500", "max_steps=2, val_check_interval=2, limit_val_batches=1, enable_progress_bar=False"), "README", "exec"), {})
    run = tmp_path / "runs" / "api" / "fixmatch"
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.ckpt"}
    assert any(p.name.startswith("best-") for p in (run / "checkpoints").iterdir())
    summary = json.loads(next(run.rglob("run_summary.json")).read_text())
    assert summary["global_step"] == 2 and "acc" in summary["test"]
    assert "test/acc" in capsys.readouterr().out
