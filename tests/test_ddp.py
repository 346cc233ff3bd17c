import functools

import ddp
import tiny
from sslzoo.methods import FixMatch, SimMatch

GLOBAL_BATCH = 4


def _fixmatch():
    return FixMatch(num_classes=4, backbone="tiny_mlp", threshold=0.3, lr=0.1)


def _datamodule(path, world_size):
    return tiny.tiny_datamodule(path, batch_size=GLOBAL_BATCH // world_size, steps_per_epoch=3)


def test_fixmatch_two_processes_equal_one(tmp_path):
    make_dm = functools.partial(_datamodule, tiny.tiny_npz(tmp_path))
    _, double = ddp.one_vs_two_processes(tmp_path, _fixmatch, make_dm, max_steps=5)
    assert int(double["ema.num_updates"]) == 5
    initial = tiny.weights(_fixmatch())
    assert not all((initial[k] - double[k]).abs().max() < 1e-3 for k in initial if initial[k].is_floating_point())


def _simmatch():
    return SimMatch(num_classes=4, backbone="tiny_mlp", threshold=0.3, lr=0.1, bank_warmup_epochs=0, da_length=3)


def test_simmatch_bank_and_queue_two_processes_equal_one(tmp_path):
    """All-gathered bank writes and all-reduced DA means: 2 processes == 1 process fed the same samples."""
    make_dm = functools.partial(_datamodule, tiny.tiny_npz(tmp_path))
    single, double = ddp.one_vs_two_processes(tmp_path, _simmatch, make_dm, max_steps=4)
    assert single["bank.embeddings"].shape == (8, 128)
    assert int(double["distribution_alignment.position"]) == 4 % 3
