"""Run summaries (RunSummary), the paper table (experiments/paper_results.yml) and `sslzoo report`."""
import json
import time
from pathlib import Path

import pytest
import torch
import yaml

import tiny
from sslzoo.cli import build_cli
from sslzoo.command import main
from sslzoo.report import SUMMARY_FILE, find_paper_result, load_paper_results, report
from sslzoo.report.paper_results import DEFAULT_PAPER_RESULTS, PaperResult
from sslzoo.report.run_summary import update_best_last

REPO = Path(__file__).resolve().parents[1]


def _summary(run: Path, version: int) -> dict:
    return json.loads((run / "lightning_logs" / f"version_{version}" / SUMMARY_FILE).read_text())


def test_best_and_last_of_a_metric():
    record = None
    for step, value in [(10, 0.5), (20, 0.7), (30, 0.7), (40, 0.6)]:
        record = update_best_last(record, value, step)
    assert record == {"best": 0.7, "best_step": 20, "last": 0.6, "last_step": 40,  # a tie keeps the earlier best
                      "recent": [0.5, 0.7, 0.7, 0.6], "median": pytest.approx(0.65), "median_of": 4}


def test_median_of_the_last_20_evaluations():
    # FixMatch's protocol: the median over the last 20 evaluations; older ones drop out.
    record = None
    for step, value in enumerate([0.0] * 5 + [i / 100 for i in range(1, 21)]):
        record = update_best_last(record, value, step)
    assert record["recent"] == [i / 100 for i in range(1, 21)] and record["median_of"] == 20
    assert record["median"] == pytest.approx(0.105)  # (0.10 + 0.11) / 2


def test_summary_of_fit_resume_and_test_through_the_cli(tmp_path):
    config = tmp_path / "experiments" / "toy" / "fixmatch.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("model:\n  class_path: sslzoo.methods.FixMatch\n  init_args:\n    num_classes: 4\n")
    args = ["--config", str(config), *tiny.toy_cli_args(tmp_path)[2:], "--seed_everything", "0"]
    run = tmp_path / "run"

    cli = build_cli(["fit", *args, "--trainer.max_epochs", "1"])
    first = _summary(run, 0)
    val_acc = float(cli.trainer.callback_metrics["val/acc"])
    assert first["stage"] == "fit" and first["finished"] is True
    assert first["config_files"] == [str(config)]
    assert (first["method"], first["datamodule"], first["dataset"], first["labels"]) == ("FixMatch", "ArrayDataModule", "tiny", "8")
    assert (first["global_step"], first["epoch"]) == (3, 1)
    assert first["val"]["acc"] == {"best": val_acc, "best_step": 3, "last": val_acc, "last_step": 3,
                                   "recent": [val_acc], "median": val_acc, "median_of": 1}
    assert first["val_split"] == "test"  # no num_val: "best" is selected on the test set
    assert {"cluster_acc", "nmi", "ari"} <= first["val"].keys() and "test" not in first
    assert first["fit_seconds"] > 0

    # The checkpoint carries the summary's state; plant an earlier, better best and a long first run.
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["callbacks"]["RunSummary"]["val"] == first["val"]
    checkpoint["callbacks"]["RunSummary"]["val"]["acc"].update(best=0.99, best_step=1)
    checkpoint["callbacks"]["RunSummary"]["fit_seconds"] = 1000.0
    torch.save(checkpoint, last)

    started = time.monotonic()
    cli = build_cli(["fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    resumed_for = time.monotonic() - started
    resumed = _summary(run, 1)
    val_acc = float(cli.trainer.callback_metrics["val/acc"])
    assert (resumed["global_step"], resumed["epoch"]) == (6, 2)
    assert resumed["val"]["acc"] == {"best": 0.99, "best_step": 1, "last": val_acc, "last_step": 6,
                                     "recent": [first["val"]["acc"]["last"], val_acc], "median_of": 2,
                                     "median": pytest.approx((first["val"]["acc"]["last"] + val_acc) / 2)}
    assert 1000.0 < resumed["fit_seconds"] < 1000.0 + resumed_for

    cli = build_cli(["test", *args, "--ckpt_path", str(last)])
    tested = _summary(run, 2)
    assert tested["stage"] == "test" and tested["ckpt_path"] == str(last)
    assert tested["test"]["acc"] == float(cli.trainer.callback_metrics["test/acc"])
    assert tested["global_step"] == 6  # the checkpoint's step, not the fresh trainer's 0
    assert tested["val"]["acc"]["best"] == 0.99 and 1000.0 < tested["fit_seconds"] <= resumed["fit_seconds"]

    papers = tmp_path / "papers.yml"
    papers.write_text("- {config: toy/fixmatch.yaml, labels: 8, metrics: {acc: 50}, source: test}\n")
    csv_rows = report([str(run)], "csv", paper_results_file=papers).splitlines()
    assert len(csv_rows) == 2  # the run's three summaries make one row
    cells = dict(zip(csv_rows[0].split(","), csv_rows[1].split(",")))
    test_acc = 100 * tested["test"]["acc"]
    assert cells["config"] == "toy/fixmatch.yaml" and cells["steps"] == "6" and cells["labels"] == "8"
    assert cells["top-1 best"] == "99.00 (selected on test)" and cells["top-1 test"] == f"{test_acc:.2f}"
    assert cells["top-1 median last 20"] == f"{100 * resumed['val']['acc']['median']:.2f} (of 2)"
    assert cells["paper"] == "50" and cells["Δ"] == f"{test_acc - 50:+.2f}"


def _write(path: Path, **summary) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / SUMMARY_FILE).write_text(json.dumps({"format": 1, "log_dir_in_run": f"lightning_logs/{path.name}", **summary}))


def _metric(best: float, last: float) -> dict:
    return {"best": best, "best_step": 1, "last": last, "last_step": 2}


@pytest.fixture
def hand_made_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixmatch = {
        "config_files": ["experiments/fixmatch/cifar10_40.yaml"], "method": "FixMatch", "dataset": "cifar10", "labels": "40",
    }
    logs = Path("runs/fixmatch/lightning_logs")
    _write(logs / "version_0", **fixmatch, stage="fit", written_at="2025-01-01T10:00:00+00:00", global_step=100, fit_seconds=60.0,
           val={"acc": _metric(0.5, 0.5)})
    _write(logs / "version_1", **fixmatch, stage="fit", written_at="2025-01-02T10:00:00+00:00", global_step=200, fit_seconds=3725.4,
           val_split="held-out", val={"acc": {**_metric(0.9, 0.88), "median": 0.885, "median_of": 20}, "cluster_acc": _metric(0.91, 0.89), "nmi": _metric(0.8, 0.79), "ari": _metric(0.7, 0.69)})
    _write(logs / "version_2", **fixmatch, stage="test", written_at="2025-01-03T10:00:00+00:00", global_step=150, fit_seconds=3000.0,
           val={"acc": _metric(0.9, 0.9)}, test={"acc": 0.885})
    _write(Path("runs/scan/lightning_logs/version_0"), stage="fit", written_at="2025-01-01T10:00:00+00:00", global_step=50,
           fit_seconds=59.6, config_files=["/somewhere/experiments/scan/cifar10_selflabel.yaml"], method="SCANSelfLabel",
           dataset="cifar10", labels="none", val={"cluster_acc": _metric(0.81, 0.8), "nmi": _metric(0.71, 0.7), "ari": _metric(0.66, 0.65)})
    # Another run of the FixMatch config with other labels, and a run without a config file: no paper number.
    _write(Path("runs/other/lightning_logs/version_0"), **{**fixmatch, "labels": "250"}, stage="fit", written_at="2025-01-01T10:00:00+00:00",
           global_step=10, fit_seconds=1.0, val_split="test", val={"acc": {**_metric(0.6, 0.6), "median": 0.55, "median_of": 3}})
    _write(Path("runs/plain"), config_files=[], method="Supervised", dataset="tiny", labels="8", stage="fit",
           written_at="2025-01-01T10:00:00+00:00", global_step=3, fit_seconds=0.4, val={"acc": _metric(0.25, 0.25)}, log_dir_in_run=".")
    return Path("runs")


EXPECTED_MARKDOWN = """\
| run | config | method | dataset | labels | top-1 best | top-1 last | top-1 median last 20 | top-1 test | cluster ACC | NMI | ARI | steps | wall time | paper | Δ |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| runs/fixmatch | fixmatch/cifar10_40.yaml | FixMatch | cifar10 | 40 | 90.00 | 88.00 | 88.50 | 88.50 (step 150) | 89.00 | 79.00 | 69.00 | 200 | 1:02:05 | 86.19 | +2.31 |
| runs/other | fixmatch/cifar10_40.yaml | FixMatch | cifar10 | 250 | 60.00 (selected on test) | 60.00 | 55.00 (of 3) | – | – | – | – | 10 | 0:00:01 | – | – |
| runs/plain | – | Supervised | tiny | 8 | 25.00 | 25.00 | – | – | – | – | – | 3 | 0:00:00 | – | – |
| runs/scan | scan/cifar10_selflabel.yaml | SCANSelfLabel | cifar10 | none | – | – | – | – | 80.00 | 70.00 | 65.00 | 50 | 0:01:00 | ACC 87.6 | ACC -7.60 |
"""


def test_report_markdown_for_hand_made_summaries(hand_made_runs):
    # runs/fixmatch: the newest fit summary (version_1), with the test of version_2 (a checkpoint of step 150).
    assert report([str(hand_made_runs)]) == EXPECTED_MARKDOWN


def test_report_command_formats_output_and_every_version(hand_made_runs, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        main(["report", str(hand_made_runs / "scan"), "--format", "csv"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == (
        "run,config,method,dataset,labels,top-1 best,top-1 last,top-1 median last 20,top-1 test,cluster ACC,NMI,ARI,steps,wall time,paper,Δ\n"
        "runs/scan,scan/cifar10_selflabel.yaml,SCANSelfLabel,cifar10,none,,,,,80.00,70.00,65.00,50,0:01:00,"
        "ACC 87.6,ACC -7.60\n"
    )
    with pytest.raises(SystemExit):
        main(["report", str(hand_made_runs), "--all", "--output", "table.md"])
    rows = Path("table.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| runs/fixmatch/lightning_logs/version_0", "| runs/fixmatch/lightning_logs/version_1", "| runs/fixmatch/lightning_logs/version_2",
        "| runs/other/lightning_logs/version_0", "| runs/plain", "| runs/scan/lightning_logs/version_0",
    ]


def test_report_of_a_folder_without_summaries_says_what_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["report", str(tmp_path)])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"no {SUMMARY_FILE} under {tmp_path}" in error and "sslzoo fit --config" in error
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err


def test_paper_table_names_shipped_configs_with_their_labels():
    results = load_paper_results()
    assert len(results) >= 40
    for result in results:
        config = REPO / "experiments" / result.config
        assert config.is_file(), result.config
        parsed = yaml.safe_load(config.read_text())
        data = parsed["data"]["init_args"]
        expected = data.get("label_subset") or data.get("num_labels")
        if expected is not None:
            assert result.labels == str(expected), result.config
        clustering = parsed["model"]["class_path"].endswith(("SCAN", "SCANSelfLabel"))
        assert set(result.metrics) <= ({"cluster_acc", "nmi", "ari"} if clustering else {"acc"}), result.config
        assert all(0 < value <= 100 for value in result.metrics.values()) and result.source


def test_paper_table_rejects_bad_entries(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- {config: fixmatch/cifar10_40.yaml, metrics: {acc: 138.1}, source: error not converted}\n")
    with pytest.raises(ValueError, match=r"acc = 138.1 is not a percentage"):
        load_paper_results(bad)
    bad.write_text("- {config: fixmatch/cifar10_40.yaml, metrics: {top1: 86.19}, source: x}\n")
    with pytest.raises(ValueError, match="metrics must map some of"):
        load_paper_results(bad)


def test_paper_matching_by_config_and_labels():
    results = load_paper_results(DEFAULT_PAPER_RESULTS)
    fixmatch = find_paper_result(["experiments/fixmatch/cifar10_40.yaml"], "40", results)
    assert isinstance(fixmatch, PaperResult) and fixmatch.metrics == {"acc": 86.19}
    assert find_paper_result(["/cluster/me/sslzoo/experiments/fixmatch/cifar10_40.yaml", "local.yaml"], "40", results) == fixmatch
    assert find_paper_result(["experiments/fixmatch/cifar10_40.yaml"], "250", results) is None  # relabelled: another experiment
    assert find_paper_result(["experiments/supervised/cifar10_40.yaml"], "40", results) is None
    assert find_paper_result([], "40", results) is None
    scan = find_paper_result(["experiments/scan/stl10_selflabel.yaml"], "none", results)
    assert scan.metrics == {"cluster_acc": 76.7}  # the repository protocol (ECCV), not arXiv v1's 70.2


def test_run_files_go_to_the_version_folder_or_the_run_folder(tmp_path):
    """TensorBoard/CSV: the per-version log_dir. W&B first: the run folder, not W&B's save_dir
    (shared by every run that uses it), so two runs' summaries and pictures never collide."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from sslzoo.callbacks import run_directory

    csv = L.Trainer(default_root_dir=tmp_path / "run", logger=CSVLogger(tmp_path / "run"), accelerator="cpu")
    assert run_directory(csv) == Path(csv.log_dir) == tmp_path / "run" / "lightning_logs" / "version_0"
    wandb_first = L.Trainer(default_root_dir=tmp_path / "run", logger=WandbLogger(offline=True, save_dir=tmp_path / "shared"), accelerator="cpu")
    assert run_directory(wandb_first) == tmp_path / "run"
    assert run_directory(L.Trainer(default_root_dir=tmp_path / "run", logger=False, accelerator="cpu")) == tmp_path / "run"
