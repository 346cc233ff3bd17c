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
        assert isinstance(ops[-2], FixMatchRandAugment) and ops[-2].num_ops == 2 and ops[-2].variant == "pytorch_port"
        assert isinstance(ops[-1], Cutout) and ops[-1].size == side
    ops = build_view({"name": "strong", "cutout": 16, "randaugment": "fixmatch_tf"}, infos.STL10).augmentations
    assert ops[-1].size == 16 and ops[-2].variant == "fixmatch_tf"
    assert build_view({"name": "strong", "cutout_fraction": 0.25}, infos.STL10).augmentations[-1].size == 24


def test_strong_view_rejects_an_ambiguous_or_fractional_cutout():
    with pytest.raises(ValueError, match="`cutout` \\(pixels\\) or `cutout_fraction`, not both"):
        build_view({"name": "strong", "cutout": 16, "cutout_fraction": 0.5}, infos.STL10)
    with pytest.raises(ValueError, match="whole pixels"):
        build_view({"name": "strong", "cutout": 0.5}, infos.STL10)
    with pytest.raises(ValueError, match="unknown RandAugment variant"):
        build_view({"name": "strong", "randaugment": "tf"}, infos.CIFAR10)


_RECIPE_INFO = {"CIFAR10DataModule": infos.CIFAR10, "CIFAR100DataModule": infos.CIFAR100, "SVHNDataModule": infos.SVHN, "STL10DataModule": infos.STL10}


def _recipe_views(path):
    import yaml

    data = yaml.safe_load(path.read_text())["data"]
    info = _RECIPE_INFO[data["class_path"].rpartition(".")[2]]
    return build_views(data["init_args"]["unlabeled_views"], info).views, info


def test_stl10_recipe_cuts_a_16_px_hole_in_96_px_images():
    """google-research/fixmatch libml/augment.py AugmentPoolRAMC: cutout_numpy(size=16) on every
    dataset, the square [c - 8, c + 8) clipped to the image; not 0.5 x 96 = 48 px."""
    from pathlib import Path

    (weak, strong), info = _recipe_views(Path(__file__).resolve().parents[1] / "experiments/fixmatch/stl10_1000.yaml")
    cutout = strong.augmentations[-1]
    img = torch.zeros(3, 96, 96, dtype=torch.uint8)
    for seed in range(20):
        centre = int(torch.randint(96 * 96, (), generator=torch.Generator().manual_seed(seed)))
        y0, x0 = divmod(centre, 96)
        hole = cutout(img, generator=torch.Generator().manual_seed(seed)) != 0
        expected = torch.zeros(96, 96, dtype=torch.bool)
        expected[max(0, y0 - 8) : y0 + 8, max(0, x0 - 8) : x0 + 8] = True
        assert torch.equal(hole, expected.expand(3, 96, 96))
        if 8 <= y0 <= 88 and 8 <= x0 <= 88:
            assert int(hole[0].sum()) == 16 * 16


def test_fixmatch_recipes_use_the_tf_codes_strong_view():
    """Every FixMatch paper recipe: weak + (weak, TF RandAugment, 16 px Cutout) on the unlabeled stream."""
    from pathlib import Path

    from datamodules.views.cutout import Cutout
    from datamodules.views.randaugment import FixMatchRandAugment

    recipes = sorted((Path(__file__).resolve().parents[1] / "experiments/fixmatch").glob("*.yaml"))
    assert len(recipes) == 10
    for path in recipes:
        (weak, strong), info = _recipe_views(path)
        randaugment, cutout = strong.augmentations[-2:]
        assert isinstance(randaugment, FixMatchRandAugment) and randaugment.variant == "fixmatch_tf", path.name
        assert (randaugment.num_ops, randaugment.apply_prob, randaugment.max_magnitude) == (2, 0.5, 10), path.name
        assert isinstance(cutout, Cutout) and cutout.size == 16, path.name
        assert not any(isinstance(a, (Cutout, FixMatchRandAugment)) for a in weak.augmentations), path.name


def test_multicrop_returns_global_then_local_crops():
    view = build_view({"name": "multicrop", "num_global": 2, "num_local": 3}, infos.CIFAR10)
    crops = view(_image())
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 18, 18)] * 3
    imagenet = build_view("multicrop", infos.IMAGENET)(_image(64))
    assert [c.shape[-1] for c in imagenet] == [224, 224] + [96] * 6


def test_rotation_view_stacks_the_four_rotations():
    out = build_view({"name": "rotation", "shared_augmentation": True}, infos.CIFAR10)(_image())  # one crop, rotated
    assert out.shape == (4, 3, 32, 32)  # the default crops each rotation on its own (tests/test_boosted_functional.py)
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


# --- Fast translate, float crop and colour ops ---------------------------------------------


def _reflect_shift_reference(img, dy, dx, pad_h, pad_w):
    h, w = img.shape[-2:]
    flat = img.double().reshape(-1, 1, h, w)
    padded = F.pad(flat, (pad_w, pad_w, pad_h, pad_h), mode="reflect").reshape(*img.shape[:-2], h + 2 * pad_h, w + 2 * pad_w)
    return padded.to(img.dtype)[..., pad_h + dy : pad_h + dy + h, pad_w + dx : pad_w + dx + w]


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 16), (3, 96, 96), (3, 40, 24), (2, 3, 32, 32)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_translate_matches_reflect_pad_for_every_path(shape, dtype):
    # Small images go through the cached torch.take index, large ones (96 px) through a partial reflect pad.
    img = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    translate = RandomTranslate(0.125)
    pad_h, pad_w = round(0.125 * shape[-2]), round(0.125 * shape[-1])
    torch.manual_seed(0)
    for _ in range(30):
        state = torch.get_rng_state()
        out = translate(img)
        torch.set_rng_state(state)
        dy, dx = int(torch.randint(-pad_h, pad_h + 1, ())), int(torch.randint(-pad_w, pad_w + 1, ()))
        assert out.dtype == dtype and out.is_contiguous()
        assert torch.equal(out, _reflect_shift_reference(img, dy, dx, pad_h, pad_w))


def _float_image(size=18, seed=0):
    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))
    x[:, :3, :3] = 0.5  # grey pixels (no hue)
    x[1, 4] = x[0, 4]  # r == g ties
    x[2, 5] = x[0, 5]  # r == b ties
    x[:, 6, :4] = torch.tensor([[1.0], [0.0], [0.0]])  # saturated red
    return x


@pytest.mark.parametrize("factor", [0.0, 0.2, 0.5, 1.0, 1.37, 1.8])
def test_brightness_contrast_saturation_match_torchvision_on_float(factor):
    from torchvision.transforms.v2 import functional as TF

    from datamodules.views.contrastive import adjust_brightness, adjust_contrast, adjust_saturation

    x = _float_image()
    for ours, theirs in ((adjust_brightness, TF.adjust_brightness), (adjust_contrast, TF.adjust_contrast), (adjust_saturation, TF.adjust_saturation)):
        torch.testing.assert_close(ours(x, factor), theirs(x, factor), atol=1e-5, rtol=0)
    gray = x[:1]
    torch.testing.assert_close(adjust_contrast(gray, factor), TF.adjust_contrast(gray, factor), atol=1e-5, rtol=0)
    assert torch.equal(adjust_saturation(gray, factor), gray)


@pytest.mark.parametrize("factor", [-0.5, -0.2, -0.07, 0.0, 0.03, 0.2, 1 / 6, 0.5])
def test_hue_matches_torchvision_on_float(factor):
    from torchvision.transforms.v2 import functional as TF

    from datamodules.views.contrastive import adjust_hue

    for x in (_float_image(), torch.randint(0, 4, (3, 16, 16), generator=torch.Generator().manual_seed(2)) / 3.0):
        out = adjust_hue(x, factor)
        torch.testing.assert_close(out, TF.adjust_hue(x, factor), atol=1e-5, rtol=0)
        assert out.min() >= 0 and out.max() <= 1
    batch = torch.stack([_float_image(seed=s) for s in range(3)])
    torch.testing.assert_close(adjust_hue(batch, factor), TF.adjust_hue(batch, factor), atol=1e-5, rtol=0)


def test_hue_shift_zero_is_identity_and_full_turn_wraps():
    from datamodules.views.contrastive import adjust_hue

    x = _float_image(32)
    torch.testing.assert_close(adjust_hue(x, 0.0), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_hue(adjust_hue(x, 0.5), 0.5), x, atol=1e-5, rtol=0)
    # A third of a turn is a channel rotation: red -> green -> blue.
    torch.testing.assert_close(adjust_hue(x, 1 / 3), x[[2, 0, 1]], atol=1e-5, rtol=0)


def test_gray_and_random_grayscale_on_float():
    from torchvision.transforms.v2 import functional as TF

    from datamodules.views.contrastive import RandomGrayscale, rgb_to_gray

    x = _float_image()
    torch.testing.assert_close(rgb_to_gray(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)
    out = RandomGrayscale(p=1.0)(x)
    assert out.shape == x.shape and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert RandomGrayscale(p=0.0)(x) is x


def _assert_draws_like_torchvision(ours, theirs, x, seeds, atol=1e-5, theirs_input=None, theirs_scale=1.0):
    """Same seed -> same generator state afterwards and outputs equal within `atol`."""
    outputs = []
    for seed in seeds:
        torch.manual_seed(seed)
        a = ours(x)
        after_ours = torch.get_rng_state()
        torch.manual_seed(seed)
        b = theirs(x if theirs_input is None else theirs_input) * theirs_scale
        assert torch.equal(after_ours, torch.get_rng_state())
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
        outputs.append(a)
    return outputs


def test_color_jitter_matches_torchvision_with_the_same_draws():
    from torchvision.transforms import v2

    from datamodules.views.contrastive import ColorJitter

    x = _float_image()
    for args in ((0.8, 0.8, 0.8, 0.2), (0.4, 0.4, 0.4, 0.1), (0.5, None, 0.3, None), (None, None, None, 0.5)):
        ours, theirs = ColorJitter(*args), v2.ColorJitter(*args)
        assert (ours.brightness, ours.contrast, ours.saturation, ours.hue) == (theirs.brightness, theirs.contrast, theirs.saturation, theirs.hue)
        for a in _assert_draws_like_torchvision(ours, theirs, x, range(25)):
            assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(x, _float_image())  # the input is left alone


@pytest.mark.parametrize("p", [0.0, 0.2, 0.7, 0.8, 1.0])
def test_random_apply_and_grayscale_draw_like_torchvision(p):
    # 0.7 rounds down in float32, 0.2 and 0.8 up: torchvision compares the float32 draw with float32(p).
    from torchvision.transforms import v2

    from datamodules.views.contrastive import RandomApply, RandomGrayscale

    x = _float_image()

    class AddOne(torch.nn.Module):
        def forward(self, t):
            return t + 1

    pairs = ((RandomApply([AddOne()], p), v2.RandomApply([AddOne()], p)), (RandomGrayscale(p), v2.RandomGrayscale(p)))
    for ours, theirs in pairs:
        torch.manual_seed(0)
        a = [ours(x) for _ in range(300)]
        torch.manual_seed(0)
        b = [theirs(x) for _ in range(300)]
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, atol=1e-6, rtol=0)
        # The draws torchvision compares at the boundary: float32(p) and its neighbours.
        at = torch.tensor([p], dtype=torch.float32)
        for u in (torch.nextafter(at, at - 1), at, torch.nextafter(at, at + 1)):
            assert (float(u) >= ours._threshold) == bool(u >= p)


@pytest.mark.parametrize("in_size,out_size", [((32, 32), (32, 32)), ((20, 14), (18, 18)), ((5, 7), (32, 32)), ((32, 32), (18, 18)), ((150, 120), (96, 96))])
def test_resize_to_unit_float_matches_interpolate(in_size, out_size):
    from datamodules.views.geometry import resize_to_unit_float

    img = torch.randint(0, 256, (3, *in_size), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    expected = F.interpolate(img.float()[None] / 255, size=out_size, mode="bilinear", align_corners=False, antialias=True)[0]
    out = resize_to_unit_float(img, out_size)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    batch = resize_to_unit_float(torch.stack([img, img.flip(-1)]), out_size)
    torch.testing.assert_close(batch, torch.stack([out, resize_to_unit_float(img.flip(-1), out_size)]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("size,scale,image_size", [(32, (0.6, 1.0), 32), (18, (0.1, 0.6), 32), (32, (0.2, 1.0), 32), (96, (0.05, 1.0), 120)])
def test_random_resized_crop_float_draws_like_torchvision(size, scale, image_size):
    from torchvision.transforms import v2

    from datamodules.views.geometry import RandomResizedCropFloat

    img = _image(image_size, seed=4)
    ours, theirs = RandomResizedCropFloat(size, scale=scale), v2.RandomResizedCrop(size, scale=scale, antialias=True)
    for a in _assert_draws_like_torchvision(ours, theirs, img, range(25), theirs_input=img.float(), theirs_scale=1 / 255):
        assert a.dtype == torch.float32 and a.shape == (3, size, size)


@pytest.mark.parametrize("name", ["simclr", "multicrop"])
@pytest.mark.parametrize("blur_prob", [0.0, 0.5])
def test_contrastive_views_equal_torchvision_pipeline_in_float(name, blur_prob):
    """Same draws as the torchvision composition (crop, flip, jitter w.p. 0.8, grey w.p. 0.2, blur), run in float."""
    from torchvision.transforms import v2

    from datamodules.views.geometry import RandomHorizontalFlip

    info = infos.CIFAR10
    strength = 0.5 if name == "simclr" else 1.0
    mean, std = torch.tensor(info.mean).view(3, 1, 1), torch.tensor(info.std).view(3, 1, 1)

    def reference(size, scale):
        ops = [
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ]
        if blur_prob:
            ops.append(v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 2.0))], p=blur_prob))
        return lambda img: (v2.Compose(ops)(img.float() / 255) - mean) / std

    if name == "simclr":
        view, crops = build_view({"name": "simclr", "blur_prob": blur_prob}, info), [reference(32, (0.2, 1.0))]
    else:
        view = build_view({"name": "multicrop", "num_global": 2, "num_local": 3, "blur_prob": blur_prob}, info)
        crops = [reference(32, (0.6, 1.0))] * 2 + [reference(18, (0.1, 0.6))] * 3
    for seed in range(10):
        img = _image(seed=seed)
        torch.manual_seed(seed)
        ours = view(img)
        ours = ours if isinstance(ours, list) else [ours]
        after_ours = torch.get_rng_state()
        torch.manual_seed(seed)
        expected = [crop(img) for crop in crops]
        assert torch.equal(after_ours, torch.get_rng_state())
        assert len(ours) == len(expected)
        for a, b in zip(ours, expected):
            assert a.dtype == torch.float32 and a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
            assert ((a * std + mean).min() >= -1e-5) and ((a * std + mean).max() <= 1 + 1e-5)


@pytest.mark.parametrize("size,kernel", [(32, 3), (18, 3), (96, 9), (40, 23)])
def test_gaussian_blur_matches_torchvision_with_the_same_draws(size, kernel):
    from torchvision.transforms import v2

    from datamodules.views.contrastive import GaussianBlur

    x = torch.rand(3, size, size + 3, generator=torch.Generator().manual_seed(5))
    ours, theirs = GaussianBlur(kernel, sigma=(0.1, 2.0)), v2.GaussianBlur(kernel, sigma=(0.1, 2.0))
    _assert_draws_like_torchvision(ours, theirs, x, range(10))
    with pytest.raises(ValueError, match="reflect padding"):
        GaussianBlur(9)(torch.rand(3, 4, 4))


def test_contrastive_views_on_grayscale_and_blurred_images():
    info = infos.DatasetInfo("gray", 2, (0.5,), (0.25,), 16)
    img = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    assert build_view("simclr", info)(img).shape == (1, 16, 16)
    assert [tuple(c.shape) for c in build_view("multicrop", info)(img)] == [(1, 16, 16)] * 2 + [(1, 9, 9)] * 6
    torch.manual_seed(0)
    blurred = build_view({"name": "simclr", "blur_prob": 1.0}, infos.CIFAR10)(_image())
    assert blurred.shape == (3, 32, 32) and torch.isfinite(blurred).all()


def test_unit_normalize_rejects_uint8():
    from datamodules.views.contrastive import UnitNormalize

    with pytest.raises(TypeError, match="float images"):
        UnitNormalize((0.5,), (0.25,))(torch.zeros(1, 2, 2, dtype=torch.uint8))


def test_view_specs_are_checked_without_building_them():
    from datamodules.views import check_view_specs
    from sslzoo.errors import ConfigError

    check_view_specs(["weak", {"name": "strong", "cutout": 16}, {"name": "multicrop", "num_local": 2}], "unlabeled_views")
    check_view_specs("eval", "labeled_views")
    with pytest.raises(ConfigError, match="unlabeled_views: unknown view 'stong'; available views: .*strong"):
        check_view_specs(["weak", "stong"], "unlabeled_views")
    with pytest.raises(ConfigError, match="labeled_views: bad options for view 'weak': .*'cutout'"):
        check_view_specs([{"name": "weak", "cutout": 3}], "labeled_views")
    # A view's own value checks run when it is built, as a ConfigError too.
    with pytest.raises(ConfigError, match="bad options for view 'strong': .*not both"):
        build_view({"name": "strong", "cutout": 16, "cutout_fraction": 0.5}, infos.STL10)
