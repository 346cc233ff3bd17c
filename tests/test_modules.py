import torch
from torch import nn

from sslzoo.modules import EMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_ema_update_math():
    net = _net()
    ema = EMA(net, decay=0.9)
    before = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.add_(2.0)
        net[1].num_batches_tracked.add_(5)
    ema.update(net)
    for old, new, cur in zip(before, ema.module.parameters(), net.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * cur)
    torch.testing.assert_close(ema.module[1].running_mean, torch.full((4,), 0.2))
    assert ema.module[1].num_batches_tracked.item() == 5 and ema.num_updates.item() == 1


def test_ema_buffer_modes():
    net = _net()
    with torch.no_grad():
        net[1].running_mean.fill_(1.0)
    copy, own = EMA(_net(), 0.9, buffers="copy"), EMA(_net(), 0.9, buffers="own")
    copy.update(net)
    own.update(net)
    assert torch.equal(copy.module[1].running_mean, torch.ones(4))
    assert torch.equal(own.module[1].running_mean, torch.zeros(4))


def test_ema_state_is_in_the_state_dict_and_has_no_grad():
    ema = EMA(_net(), 0.99)
    keys = ema.state_dict().keys()
    assert "num_updates" in keys and "module.0.weight" in keys and "module.1.running_var" in keys
    assert not any(p.requires_grad for p in ema.parameters())
