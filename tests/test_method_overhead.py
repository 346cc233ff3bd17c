"""experiments/benchmarks/method_overhead.py: every recipe still builds, and a real batch of a few
methods goes through their training step while the bare step sees the same images."""
import sys
from pathlib import Path

import pytest
import torch

import tiny

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"))
import method_overhead as bench  # noqa: E402

BACKBONE, BACKBONE_OPTIONS = tiny.TINY_BACKBONES["tiny_wrn"]
B, MU = 2, 2


def _settings(**overrides):
    options = dict(backbone=BACKBONE, backbone_options=BACKBONE_OPTIONS, labeled_batch=B, mu=MU, warmup=0, timed=1, num_labels=10)
    options.update(overrides)
    return bench.Settings(**options)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return bench.write_fake_cifar(tmp_path_factory.mktemp("overhead") / "fake.npz", _settings(), num_train=64, num_test=10)


@pytest.mark.parametrize("name", list(bench.RECIPES))
def test_every_recipe_builds_its_method(name):
    method = bench.build_method(name, _settings())
    assert type(method).__name__.startswith(bench.RECIPES[name].cls)
    assert method.num_classes == 10 and hasattr(method.network, "backbone")


def test_steady_state_settings_reach_the_methods():
    assert bench.build_method("LCMeanTeacher", _settings()).lc_weight_now() > 0
    assert bench.build_method("SimMatch", _settings()).bank_warmup_epochs == 0
    boosted_simmatch = bench.build_method("BoostedSimMatch", _settings())
    assert boosted_simmatch.bank_warmup_epochs == 0 and boosted_simmatch.phase() == ("ssl", 0)
    assert bench.build_method("BoostedFixMatch/clustering", _settings()).phase() == ("clustering", 0)


def test_bare_inputs_group_every_image_by_resolution():
    batch = {
        "labeled": {"x": torch.zeros(2, 3, 32, 32), "y": torch.zeros(2, dtype=torch.long)},
        "unlabeled": {"x": [torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 18, 18), torch.zeros(4, 3, 18, 18)], "idx": torch.arange(4)},
        "rotated": {"x": torch.zeros(3, 4, 3, 32, 32)},
    }
    assert [tuple(x.shape) for x in bench.bare_inputs(batch)] == [(2 + 4 + 12, 3, 32, 32), (8, 3, 18, 18)]
    assert bench.batch_structure(batch)["unlabeled.x[1]"] == [4, 3, 18, 18]


@pytest.mark.parametrize(
    "name, structure, by_resolution",
    [
        ("FixMatch", {"labeled.x": [B, 3, 32, 32], "unlabeled.x[0]": [B * MU, 3, 32, 32], "unlabeled.x[1]": [B * MU, 3, 32, 32]},
         {"32x32": B + 2 * B * MU}),
        # Suave's recipe: labeled simclr view + 2 global crops at 32 px and 4 local crops at 18 px.
        ("Suave", {"labeled.x": [B, 3, 32, 32], "unlabeled.x[0]": [B * MU, 3, 32, 32], "unlabeled.x[5]": [B * MU, 3, 18, 18]},
         {"32x32": B + 2 * B * MU, "18x18": 4 * B * MU}),
        # No labeled stream; anchors and their neighbours from the (random) neighbour table.
        ("SCAN", {"unlabeled.x": [B * MU, 3, 32, 32], "unlabeled.neighbour_x": [B * MU, 3, 32, 32]}, {"32x32": 2 * B * MU}),
    ],
)
def test_real_batch_runs_through_the_method_and_the_bare_step_sees_the_same_images(name, structure, by_resolution, data_file):
    record = bench.measure_method(name, data_file, _settings())
    for key, shape in structure.items():
        assert record["batch_structure"][key] == shape
    if "labeled.x" not in structure:
        assert not any(key.startswith("labeled") for key in record["batch_structure"])
    assert record["images_by_resolution"] == by_resolution
    assert record["images_per_step"] == sum(by_resolution.values())
    method, bare = record["method_step"], record["bare_step"]
    assert len(method["step_times_s"]) == len(bare["step_times_s"]) == 1
    assert record["ratio_method_over_bare"] == pytest.approx(method["median_step_s"] / bare["median_step_s"], rel=0.01)
    assert method["images_per_s"] == pytest.approx(record["images_per_step"] / method["median_step_s"], rel=0.01)
    assert set(method["parts_median_s"]) == {"forward_and_loss", "backward", "optimizer_state_and_logging"}
    assert record["trainable_parameters"]["method"] >= record["trainable_parameters"]["bare"] > 0
