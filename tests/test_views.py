import pytest
import torch
import torch.nn.functional as F

from datamodules import info as infos
from datamodules.views import build_view, build_views
from datamodules.views.geometry import RandomTranslate


def _image(size=32, seed=0):
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _unnormalize(x, info):
    mean, std = torch.tensor(info.mean).view(3, 1, 1), torch.tensor(info.std).view(3, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8)


def test_eval_view_only_normalizes():
    img = _image()
    out = build_view("eval", infos.CIFAR10)(img)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    expected = (img.float() / 255 - torch.tensor(infos.CIFAR10.mean).view(3, 1, 1)) / torch.tensor(infos.CIFAR10.std).view(3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_translate_equals_reflect_pad_then_crop():
    img = _image()
    torch.manual_seed(0)
    for _ in range(20):
        state = torch.get_rng_state()
        out = RandomTranslate(0.125)(img)
        torch.set_rng_state(state)
        dy, dx = int(torch.randint(-4, 5, ())), int(torch.randint(-4, 5, ()))
        padded = F.pad(img.float()[None], (4, 4, 4, 4), mode="reflect")[0].to(torch.uint8)
        assert torch.equal(out, padded[:, 4 + dy : 36 + dy, 4 + dx : 36 + dx])


@pytest.mark.parametrize("name", ["weak", "strong", "simclr"])
def test_random_views_keep_shape_and_vary(name):
    torch.manual_seed(0)
    view, img = build_view(name, infos.CIFAR10), _image()
    outs = [view(img) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) and o.dtype == torch.float32 for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_weak_view_never_flips_svhn():
    torch.manual_seed(0)
    img = torch.arange(32, dtype=torch.uint8).repeat(3, 32, 1)  # columns increase left to right
    for _ in range(30):
        out = _unnormalize(build_view("weak", infos.SVHN)(img), infos.SVHN)
        middle = out[0, 16, 8:24].int()
        assert (middle.diff() > 0).all()


def test_weak_view_flips_cifar_sometimes():
    torch.manual_seed(0)
    img = torch.arange(32, dtype=torch.uint8).repeat(3, 32, 1)
    flipped = [bool((_unnormalize(build_view("weak", infos.CIFAR10)(img), infos.CIFAR10)[0, 16, 8:24].int().diff() < 0).all()) for _ in range(40)]
    assert 5 < sum(flipped) < 35


def test_strong_view_is_weak_then_randaugment_then_half_size_cutout():
    from datamodules.views.cutout import Cutout
    from datamodules.views.randaugment import FixMatchRandAugment

    for info, side in ((infos.CIFAR10, 16), (infos.STL10, 48)):
        ops = list(build_view("strong", info).augmentations)
        assert isinstance(ops[-2], FixMatchRandAugment) and ops[-2].num_ops == 2
        assert isinstance(ops[-1], Cutout) and ops[-1].size == side


def test_multicrop_returns_global_then_local_crops():
    view = build_view({"name": "multicrop", "num_global": 2, "num_local": 3}, infos.CIFAR10)
    crops = view(_image())
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 18, 18)] * 3
    imagenet = build_view("multicrop", infos.IMAGENET)(_image(64))
    assert [c.shape[-1] for c in imagenet] == [224, 224] + [96] * 6


def test_rotation_view_stacks_the_four_rotations():
    out = build_view("rotation", infos.CIFAR10)(_image())
    assert out.shape == (4, 3, 32, 32)
    for k in range(4):
        torch.testing.assert_close(out[k], torch.rot90(out[0], k, dims=(-2, -1)))


def test_variable_size_images_are_resized():
    img = _image(300)
    assert build_view("eval", infos.IMAGENET)(img).shape == (3, 224, 224)
    assert build_view("weak", infos.IMAGENET)(img).shape == (3, 224, 224)
    assert build_view("strong", infos.IMAGENET)(img).shape == (3, 224, 224)


def test_several_views_come_back_as_a_flat_list():
    out = build_views(["weak", "strong", {"name": "multicrop", "num_local": 2}], infos.CIFAR10)(_image())
    assert isinstance(out, list) and len(out) == 2 + 2 + 2
    assert isinstance(build_views(["weak"], infos.CIFAR10)(_image()), torch.Tensor)


def test_grayscale_images_work_in_pixel_views():
    info = infos.DatasetInfo("gray", 2, (0.5,), (0.25,), 16)
    img = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    for name in ("weak", "strong", "eval", "rotation"):
        assert build_view(name, info)(img).shape[-3:] == (1, 16, 16)


def test_bad_view_specs():
    with pytest.raises(ValueError, match="unknown view 'weka'; available views"):
        build_view("weka", infos.CIFAR10)
    with pytest.raises(ValueError, match="bad options for view 'multicrop'"):
        build_view({"name": "multicrop", "num_locals": 3}, infos.CIFAR10)
    with pytest.raises(ValueError, match="'name' key"):
        build_view({"size": 3}, infos.CIFAR10)
