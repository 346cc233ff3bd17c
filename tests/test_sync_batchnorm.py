"""The any-device synced BatchNorm in one process: a drop-in for BatchNorm (same keys, same math)."""
import pytest
import torch
import torch.distributed as dist
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


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_global_batch_path_equals_batchnorm_and_keeps_float32_statistics(one_process_group, dtype):
    """The all-reduce path itself (over a group of one): BatchNorm's output and running statistics,
    also for bf16 activations under autocast (the statistics stay float32)."""
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5)
    plain = nn.BatchNorm2d(4, momentum=0.3)
    synced = ProcessGroupBatchNorm.convert(nn.BatchNorm2d(4, momentum=0.3))
    expected = plain(x)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        output = synced.global_batch_norm(x.to(dtype))
    tolerance = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=0.05, rtol=0.05)
    torch.testing.assert_close(output, expected, **tolerance)
    assert output.dtype == torch.float32 and synced.running_mean.dtype == torch.float32
    torch.testing.assert_close(synced.running_mean, plain.running_mean, **tolerance)
    torch.testing.assert_close(synced.running_var, plain.running_var, **tolerance)
