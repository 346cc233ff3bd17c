"""The SimCLR and multi-crop views planned per item and finished per batch equal the per-item views."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from datamodules.info import DatasetInfo
from datamodules.views import build_views
from datamodules.views.contrastive import ColorJitter, GaussianBlur, RandomApply, RandomGrayscale, UnitNormalize
from datamodules.views.geometry import RandomResizedCropFloat, _window_resize_weights

INFO = DatasetInfo(name="tiny", num_classes=10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), image_size=32)
GRAY = DatasetInfo(name="tiny_gray", num_classes=10, mean=(0.5,), std=(0.25,), image_size=16, channels=1)


def _images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (channels, size, size), dtype=torch.uint8, generator=g) for _ in range(n)]


def _float_batch(n: int, shape=(3, 20, 24), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _assert_batch_equals_items(op, imgs: torch.Tensor, params: torch.Tensor, atol: float = 1e-6):
    state = torch.get_rng_state()
    batched = op.apply_batch(imgs, params)
    expected = torch.stack([op.apply(img, row.tolist()) for img, row in zip(imgs, params)])
    assert torch.equal(state, torch.get_rng_state())  # the pixels draw nothing
    assert batched.dtype == expected.dtype and batched.shape == expected.shape
    torch.testing.assert_close(batched, expected, atol=atol, rtol=0)
    return batched


@pytest.mark.parametrize(
    "info,specs",
    [
        (INFO, ["multicrop"]),
        (INFO, [{"name": "multicrop", "blur_prob": 0.5, "gray_prob": 0.5, "strength": 0.5}]),
        (INFO, [{"name": "multicrop", "num_global": 1, "num_local": 2, "strength": 0.25, "blur_prob": 1.0}]),
        (INFO, ["simclr", "simclr"]),
        (INFO, [{"name": "simclr", "hue": 0.1, "blur_prob": 0.5}]),
        (INFO, [{"name": "simclr", "strength": 0.125, "hue": 0.1, "gray_prob": 0.0}]),
        (GRAY, ["simclr", {"name": "multicrop", "num_local": 2, "blur_prob": 0.5}]),
    ],
)
def test_planned_views_finished_in_a_batch_equal_the_per_item_views(info, specs):
    view = build_views(specs, info)
    expected, planned = [], []
    for seed, img in enumerate(_images(32, info.channels, info.image_size)):
        torch.manual_seed(seed)
        out = view(img)
        expected.append(out if isinstance(out, list) else [out])
        after_forward = torch.get_rng_state()
        torch.manual_seed(seed)
        planned.append(view.plan(img))
        assert torch.equal(after_forward, torch.get_rng_state())
    state = torch.get_rng_state()
    finished = view.finish_batch(default_collate(planned))
    assert torch.equal(state, torch.get_rng_state())
    finished = finished if isinstance(finished, list) else [finished]
    assert len(finished) == len(expected[0])
    for position, batch in enumerate(finished):
        reference = torch.stack([outs[position] for outs in expected])
        assert batch.dtype == torch.float32 and batch.shape == reference.shape
        torch.testing.assert_close(batch, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bounds", [(0.8, 0.8, 0.8, 0.2), (0.5, None, 0.3, None), (None, None, None, 0.5), (None,) * 4])
def test_color_jitter_batch_applies_every_order_with_its_factors(bounds):
    jitter = ColorJitter(*bounds)
    orders = torch.tensor(list(itertools.permutations(range(4))), dtype=torch.float64)  # all 24
    g = torch.Generator().manual_seed(2)
    factors = torch.stack([torch.rand(len(orders), generator=g, dtype=torch.float64) * 1.6 + 0.2] * 3 + [torch.rand(len(orders), generator=g, dtype=torch.float64) - 0.5], 1)
    params = torch.cat([orders, factors.float().double()], 1)  # the draws are float32 values
    imgs = _float_batch(len(orders))
    out = _assert_batch_equals_items(jitter, imgs, params, atol=2e-6)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(imgs, _float_batch(len(orders)))  # the input is left alone


def test_color_jitter_params_hold_the_order_then_the_factors():
    jitter = ColorJitter(0.4, None, 0.4, 0.1)
    torch.manual_seed(3)
    params = jitter.draw((3, 8, 8))
    torch.manual_seed(3)
    order = torch.randperm(4).tolist()
    b, s, h = (float(torch.empty(1).uniform_(lo, hi)) for lo, hi in ((0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)))
    assert params == (*map(float, order), b, 0.0, s, h)


def test_random_apply_draws_its_transforms_only_when_applied():
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1)
    shape = (3, 8, 8)
    for p, applied in ((0.0, False), (1.0, True)):
        apply = RandomApply([jitter], p=p)
        torch.manual_seed(0)
        params = apply.draw(shape)
        after_draw = torch.get_rng_state()
        torch.manual_seed(0)
        torch.rand(1)
        inner = jitter.draw(shape) if applied else (0.0,) * jitter.param_count
        assert torch.equal(after_draw, torch.get_rng_state())
        assert params == (float(applied), *inner) and len(params) == apply.param_count


def test_random_apply_batch_keeps_the_unapplied_images_even_with_placeholder_params():
    imgs = _float_batch(6)
    jitter = RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.5)
    torch.manual_seed(4)
    draws = [RandomApply([jitter.transforms[0]], p=1.0).draw(tuple(imgs.shape[1:])) for _ in range(6)]
    params = torch.tensor(draws, dtype=torch.float64)
    params[::2] = 0.0  # not applied: flag 0 and placeholder zeros
    out = _assert_batch_equals_items(jitter, imgs, params)
    assert torch.equal(out[::2], imgs[::2])

    blur = RandomApply([GaussianBlur(5)], p=0.5)
    params = torch.tensor([[1.0, 0.7], [0.0, 0.0], [1.0, 1.9], [0.0, 0.0], [1.0, 0.1], [0.0, 0.0]], dtype=torch.float64)
    out = _assert_batch_equals_items(blur, imgs, params)
    assert torch.isfinite(out).all() and torch.equal(out[1::2], imgs[1::2])


def test_random_apply_of_a_plain_module_runs_per_item_but_cannot_be_split():
    class AddOne(torch.nn.Module):
        def forward(self, t):
            return t + 1

    apply = RandomApply([AddOne()], p=1.0)
    assert torch.equal(apply(torch.zeros(2)), torch.ones(2))
    with pytest.raises(TypeError, match="only BatchableOps.*AddOne"):
        apply.draw((3, 4, 4))


@pytest.mark.parametrize("channels", [3, 1])
def test_random_grayscale_batch_greys_the_flagged_images(channels):
    imgs = _float_batch(4, (channels, 6, 7))
    params = torch.tensor([[1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
    out = _assert_batch_equals_items(RandomGrayscale(0.5), imgs, params)
    assert torch.equal(out[1:3], imgs[1:3])


@pytest.mark.parametrize("kernel", [3, (3, 5), 9])
def test_gaussian_blur_batch_uses_each_images_sigma(kernel):
    imgs = _float_batch(5, (3, 18, 21))
    params = torch.tensor([[0.1], [0.5], [1.0], [1.5], [2.0]], dtype=torch.float64)
    _assert_batch_equals_items(GaussianBlur(kernel), imgs, params)


def test_window_resize_weights_equal_torch_antialiased_resize():
    for in_size, out_size in itertools.product([1, 2, 5, 17, 32, 70], [1, 3, 18, 32, 96]):
        eye = torch.eye(in_size, dtype=torch.float64)[None, None]
        expected = F.interpolate(eye, size=(out_size, in_size), mode="bilinear", align_corners=False, antialias=True)[0, 0]
        ours = _window_resize_weights(torch.zeros(1), torch.full((1,), float(in_size)), out_size, in_size)[0]
        torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)
    # A window of a larger axis: the same weights, shifted, zero elsewhere.
    window = _window_resize_weights(torch.tensor([3.0]), torch.tensor([17.0]), 18, 32)[0]
    torch.testing.assert_close(window[:, 3:20], _window_resize_weights(torch.zeros(1), torch.full((1,), 17.0), 18, 17)[0], atol=0, rtol=0)
    assert window[:, :3].abs().sum() == 0 and window[:, 20:].abs().sum() == 0


@pytest.mark.parametrize("image_shape,size", [((3, 32, 32), 18), ((3, 32, 32), 32), ((3, 20, 28), 24), ((1, 80, 70), 64)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_resized_crop_batch_crops_each_image_to_its_box(image_shape, size, dtype):
    h, w = image_shape[-2:]
    crop = RandomResizedCropFloat(size)
    torch.manual_seed(5)
    boxes = [crop.draw(image_shape) for _ in range(12)]
    boxes += [(0.0, 0.0, float(h), float(w)), (h - 1.0, w - 1.0, 1.0, 1.0), (2.0, 3.0, float(h - 2), 5.0)]  # whole, one pixel, edges
    params = torch.tensor(boxes, dtype=torch.float64)
    imgs = torch.randint(0, 256, (len(boxes), *image_shape), generator=torch.Generator().manual_seed(6)).to(dtype)
    out = _assert_batch_equals_items(crop, imgs, params, atol=1e-6)
    assert out.shape == (len(boxes), image_shape[0], size, size) and crop.out_shape(image_shape) == out.shape[1:]


def test_unit_normalize_broadcasts_over_a_batch():
    normalize = UnitNormalize(INFO.mean, INFO.std)
    imgs = _float_batch(3, (3, 4, 5))
    assert torch.equal(normalize(imgs), torch.stack([normalize(img) for img in imgs]))
