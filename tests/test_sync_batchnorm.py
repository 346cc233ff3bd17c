"""The any-device synced BatchNorm in one process: a drop-in for BatchNorm (same keys, same math)."""
import torch
from torch import nn

import tiny
from sslzoo.modules.sync_batchnorm import ProcessGroupBatchNorm, SyncBatchNormAnyDevice


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.BatchNorm1d(5, momentum=None))


def test_the_plugin_converts_every_batchnorm_on_cpu_and_reverts_with_the_same_state():
    plain, x = _net(), torch.randn(6, 3, 6, 6)
    expected = plain(x)
    converted = SyncBatchNormAnyDevice().apply(_net())
    assert [type(m) for m in converted if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [ProcessGroupBatchNorm] * 2
    torch.testing.assert_close(converted(x), expected)  # one process: plain BatchNorm
    assert converted.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value)
    reverted = SyncBatchNormAnyDevice().revert(converted)
    assert not any(isinstance(m, ProcessGroupBatchNorm) for m in reverted.modules())
    reverted.eval(), plain.eval()
    torch.testing.assert_close(reverted(x), plain(x))


def test_the_cli_flag_uses_the_any_device_plugin_only_when_asked(tmp_path):
    
    from sslzoo.cli import build_cli

    synced = build_cli([*tiny.toy_cli_args(tmp_path, "--trainer.sync_batchnorm", "true")], run=False)
    assert isinstance(synced.trainer._accelerator_connector._layer_sync, SyncBatchNormAnyDevice)
    plain = build_cli(tiny.toy_cli_args(tmp_path), run=False)
    assert plain.trainer._accelerator_connector._layer_sync is None
