"""FixMatch's weak and strong views split into per-item draws (`View.plan`) and batched pixels
(`View.apply_batch`): pixel for pixel equal to the per-item views, with the same RNG draws.

Tolerance: none (torch.equal) on every op, view, image shape and device tested; CUDA cases
run only where a GPU is present.
"""
import pytest
import torch

from datamodules.info import DatasetInfo
from datamodules.views.cutout import Cutout
from datamodules.views.fixmatch import strong_view, weak_view
from datamodules.views.geometry import RandomHorizontalFlip, RandomTranslate
from datamodules.views.randaugment import FIXMATCH_OPS, FixMatchRandAugment, apply_op, apply_op_batch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(3, 32, 32), (1, 32, 32), (3, 24, 40), (1, 24, 40)]


def _info(shape) -> DatasetInfo:
    channels, h, w = shape
    return DatasetInfo("test", 10, (0.5,) * channels, (0.25,) * channels, max(h, w), channels=channels)


def _images(shape, count: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Noise, plus the degenerate cases of AutoContrast / Equalize: a flat, a two-level and a
    low-contrast image."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=g) for _ in range(count - 3)]
    flat = torch.full(shape, 77, dtype=torch.uint8)
    two_levels = torch.where(torch.rand(shape, generator=g) < 0.5, 10, 200).to(torch.uint8)
    low_contrast = torch.randint(100, 108, shape, dtype=torch.uint8, generator=g)
    return images + [flat, two_levels, low_contrast]


def _assert_batch_equals_per_item(view, images, device: str = "cpu", first_seed: int = 100) -> None:
    outputs, planned = [], []
    for seed, img in enumerate(images, first_seed):
        torch.manual_seed(seed)
        outputs.append(view(img))
        after_forward = torch.get_rng_state()
        torch.manual_seed(seed)
        planned.append(view.plan(img))
        assert torch.equal(torch.get_rng_state(), after_forward), "plan draws differently from forward"
    batch = torch.stack([p["image"] for p in planned]).to(device)
    params = torch.stack([p["params"] for p in planned]).to(device)
    out = view.apply_batch(batch, params)
    assert out.device.type == device and out.dtype == outputs[0].dtype
    assert torch.equal(out.cpu(), torch.stack(outputs))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_weak_view_batched_equals_per_item(shape, padding, device):
    view = weak_view(_info(shape), padding=padding)
    assert len(view.batched_ops) == 2  # flip, translate
    _assert_batch_equals_per_item(view, _images(shape), device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("randaugment,cutout", [("pytorch_port", 16), ("fixmatch_tf", 16), ("pytorch_port", 7), ("fixmatch_tf", 0)])
def test_strong_view_batched_equals_per_item(shape, randaugment, cutout, device):
    view = strong_view(_info(shape), cutout=cutout, randaugment=randaugment)
    assert len(view.batched_ops) == 4  # flip, translate, RandAugment, Cutout
    _assert_batch_equals_per_item(view, _images(shape), device)


def test_strong_view_without_flip_and_with_three_ops():
    view = strong_view(_info((3, 32, 32)), num_ops=3, hflip=False, cutout_fraction=0.3, randaugment="fixmatch_tf")
    _assert_batch_equals_per_item(view, _images((3, 32, 32)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 24, 40)])
@pytest.mark.parametrize("variant", ["pytorch_port", "fixmatch_tf"])
@pytest.mark.parametrize("name", FIXMATCH_OPS)
def test_every_op_at_every_level_batched_equals_apply_op(name, variant, shape, device):
    images = _images(shape, count=36, seed=1)
    levels = [(magnitude, sign) for magnitude in range(1, 10) for sign in (1, -1)] * 2
    expected = torch.stack([apply_op(img, name, m, s, variant=variant) for img, (m, s) in zip(images, levels)])
    magnitudes = torch.tensor([m for m, _ in levels], dtype=torch.float64, device=device)
    signs = torch.tensor([s for _, s in levels], dtype=torch.float64, device=device)
    out = apply_op_batch(torch.stack(images).to(device), name, magnitudes, signs, variant=variant)
    assert out.dtype == torch.uint8 and torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_randaugment_policy_encoding_and_batch(device):
    augment = FixMatchRandAugment(num_ops=2, apply_prob=0.7)
    assert augment.param_count == 8
    images = _images((3, 32, 32), count=48)
    params = []
    for seed in range(len(images)):
        g = torch.Generator().manual_seed(seed)
        draw = augment.draw((3, 32, 32), generator=g)
        assert augment.policy(draw) == augment.sample(torch.Generator().manual_seed(seed))
        params.append(draw)
    expected = torch.stack([augment(img, generator=torch.Generator().manual_seed(s)) for s, img in enumerate(images)])
    out = augment.apply_batch(torch.stack(images).to(device), torch.tensor(params, dtype=torch.float64))
    assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", [Cutout(12, random_size=True), Cutout(9, fill=200), RandomTranslate(0.125), RandomTranslate(0.2, padding="zero")], ids=repr)
@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 96, 96), (2, 20, 28)])
def test_single_ops_batched_equal_per_item(op, shape, device):
    # 96 px: RandomTranslate's per-item path pads instead of using its cached index.
    images = _images(shape, count=24)
    _assert_op_batch_equals_per_item(op, images, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_flip_batched_equals_per_item_on_any_dtype(dtype, device):
    images = [img.to(dtype) for img in _images((3, 17, 23), count=32)]
    _assert_op_batch_equals_per_item(RandomHorizontalFlip(), images, device)


def _assert_op_batch_equals_per_item(op, images, device) -> None:
    outputs, params = [], []
    for seed, img in enumerate(images):
        torch.manual_seed(seed)
        outputs.append(op(img))
        after_forward = torch.get_rng_state()
        torch.manual_seed(seed)
        params.append(op.draw(tuple(img.shape)))
        assert torch.equal(torch.get_rng_state(), after_forward) and len(params[-1]) == op.param_count
    out = op.apply_batch(torch.stack(images).to(device), torch.tensor(params, dtype=torch.float64, device=device))
    assert torch.equal(out.cpu(), torch.stack(outputs))


def test_cutout_with_a_generator_is_its_draw_then_apply():
    img = _images((3, 32, 32), count=4)[0]
    for seed in range(10):
        cutout = Cutout(10, random_size=True)
        params = cutout.draw(tuple(img.shape), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(cutout(img, generator=torch.Generator().manual_seed(seed)), cutout.apply(img, params))


def test_autocontrast_batched_equals_per_item_for_every_channel_range():
    # Each channel spans one (lo, hi) pair: the float64 scale 255 / (hi - lo) must be the per-item
    # division's, for all 32640 pairs (a reciprocal times 255 differs for a fifth of them).
    pairs = [(lo, hi) for lo in range(256) for hi in range(lo + 1, 256)]
    values = torch.arange(256).view(1, 256)
    lo, hi = (torch.tensor(side).view(-1, 1) for side in zip(*pairs))
    planes = values.clamp(lo, hi).to(torch.uint8)  # (pairs, 256): every value of [lo, hi]
    images = planes.view(-1, 3, 8, 32)  # 32640 = 3 * 10880
    expected = torch.stack([apply_op(img, "AutoContrast", 1) for img in images])
    out = apply_op_batch(images, "AutoContrast", torch.ones(len(images)), torch.ones(len(images)))
    assert torch.equal(out, expected)


def test_contrast_batched_rounds_half_means_as_per_item():
    # 24 x 40 = 960 pixels: a sum of 960 k + 480 makes the grey mean exactly k + 0.5.
    images = torch.full((255, 1, 24, 40), 0, dtype=torch.uint8)
    for k in range(255):
        images[k].fill_(k).view(-1)[:480] = k + 1
    magnitudes, signs = torch.arange(255) % 9 + 1, torch.ones(255)
    expected = torch.stack([apply_op(img, "Contrast", int(m)) for img, m in zip(images, magnitudes)])
    assert torch.equal(apply_op_batch(images, "Contrast", magnitudes, signs), expected)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 24, 40), (2, 3, 29, 37)])
def test_normalize_lookup_equals_the_cpu_op(shape):
    # What a non-CPU device runs, checked here on the CPU against the fused op per item.
    from datamodules.views.normalize import Normalize

    channels = shape[-3]
    normalize = Normalize(torch.rand(channels, generator=torch.Generator().manual_seed(0)).tolist(), [0.2, 0.25, 0.3][:channels])
    img = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(normalize._lookup(img), normalize(img))
    assert torch.equal(Normalize((0.5,), (0.25,))._lookup(img), Normalize((0.5,), (0.25,))(img))  # one mean for all channels
