"""FixMatch RandAugment and Cutout on uint8 tensors, checked against PIL.

Tolerance: none. Every op must equal its PIL definition (kekmodel's
``fixmatch_augment_pool`` with a grey fill for the geometric ops) pixel for pixel.
"""
import numpy as np
import pytest
import torch

from datamodules.views.cutout import Cutout
from datamodules.views.randaugment import FIXMATCH_OPS, GEOMETRIC_OPS, FixMatchRandAugment, apply_op

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402


def _pil_op(img: Image.Image, name: str, v: int, sign: int, fill: int | None = 128) -> Image.Image:
    """kekmodel/FixMatch-pytorch dataset/randaugment.py, fillcolor added for the geometric ops."""
    fillcolor = None if fill is None else (fill if img.mode == "L" else (fill,) * 3)
    enhance = float(v) * 0.9 / 10 + 0.05
    shift = sign * (float(v) * 0.3 / 10)
    ops = {
        "Identity": lambda: img,
        "AutoContrast": lambda: ImageOps.autocontrast(img),
        "Equalize": lambda: ImageOps.equalize(img),
        "Rotate": lambda: img.rotate(sign * int(v * 30 / 10), fillcolor=fillcolor),
        "Solarize": lambda: ImageOps.solarize(img, 256 - int(v * 256 / 10)),
        "Color": lambda: ImageEnhance.Color(img).enhance(enhance),
        "Contrast": lambda: ImageEnhance.Contrast(img).enhance(enhance),
        "Brightness": lambda: ImageEnhance.Brightness(img).enhance(enhance),
        "Sharpness": lambda: ImageEnhance.Sharpness(img).enhance(enhance),
        "ShearX": lambda: img.transform(img.size, Image.AFFINE, (1, shift, 0, 0, 1, 0), fillcolor=fillcolor),
        "ShearY": lambda: img.transform(img.size, Image.AFFINE, (1, 0, 0, shift, 1, 0), fillcolor=fillcolor),
        "TranslateX": lambda: img.transform(
            img.size, Image.AFFINE, (1, 0, int(shift * img.size[0]), 0, 1, 0), fillcolor=fillcolor
        ),
        "TranslateY": lambda: img.transform(
            img.size, Image.AFFINE, (1, 0, 0, 0, 1, int(shift * img.size[1])), fillcolor=fillcolor
        ),
        "Posterize": lambda: ImageOps.posterize(img, int(v * 4 / 10) + 4),
    }
    return ops[name]()


def _to_pil(img: torch.Tensor) -> Image.Image:
    array = img.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if img.shape[0] == 1 else array)


def _from_pil(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img)
    return torch.from_numpy(array.reshape(*array.shape[:2], -1).copy()).permute(2, 0, 1)


def _images(channels: int) -> list[torch.Tensor]:
    """Noise, a smooth low-contrast image (non-trivial autocontrast/equalize), a flat
    image (PIL's degenerate cases) and a non-square one."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (channels, 32, 32), dtype=torch.uint8, generator=g)
    ramp = torch.linspace(0, 1, 32)
    smooth = 60 + 40 * ramp.view(1, 32, 1) + 30 * ramp.view(1, 1, 32) * torch.rand(channels, 1, 1, generator=g)
    smooth = (smooth + 8 * torch.rand(channels, 32, 32, generator=g)).to(torch.uint8)
    flat = torch.full((channels, 32, 32), 77, dtype=torch.uint8)
    odd = torch.randint(0, 256, (channels, 29, 37), dtype=torch.uint8, generator=g)
    return [noise, smooth, flat, odd]


@pytest.mark.parametrize("name", FIXMATCH_OPS)
@pytest.mark.parametrize("channels", [3, 1])
def test_op_equals_pil(name, channels):
    signs = (1, -1) if name in GEOMETRIC_OPS else (1,)
    for img in _images(channels):
        reference_input = _to_pil(img)
        for magnitude in (1, 2, 4, 5, 9):
            for sign in signs:
                out = apply_op(img, name, magnitude, sign)
                assert out.dtype == torch.uint8 and out.shape == img.shape
                expected = _from_pil(_pil_op(reference_input, name, magnitude, sign))
                assert torch.equal(out, expected), (name, channels, tuple(img.shape), magnitude, sign)


@pytest.mark.parametrize("name", sorted(GEOMETRIC_OPS))
def test_fill_zero_is_kekmodel_black_fill(name):
    img = _images(3)[0]
    expected = _from_pil(_pil_op(_to_pil(img), name, 9, -1, fill=None))
    assert torch.equal(apply_op(img, name, 9, -1, fill=0), expected)


def test_ops_do_not_modify_their_input():
    img = _images(3)[0]
    before = img.clone()
    for name in FIXMATCH_OPS:
        apply_op(img, name, 9)
    assert torch.equal(img, before)


def test_apply_op_rejects_unknown_names_and_float_images():
    img = _images(3)[0]
    with pytest.raises(ValueError, match="unknown op"):
        apply_op(img, "Invert", 5)
    with pytest.raises(TypeError):
        apply_op(img.float(), "Rotate", 5)


@pytest.mark.parametrize("channels", [3, 1])
def test_randaugment_keeps_dtype_and_shape(channels):
    augment = FixMatchRandAugment(apply_prob=1.0)
    torch.manual_seed(0)
    for img in _images(channels):
        for _ in range(10):
            out = augment(img)
            assert out.dtype == torch.uint8 and out.shape == img.shape


def test_randaugment_is_random_but_seeded():
    img = _images(3)[0]
    augment = FixMatchRandAugment(apply_prob=1.0)
    torch.manual_seed(0)
    first, second = augment(img), augment(img)
    assert not torch.equal(first, second)
    assert not torch.equal(first, img) and not torch.equal(second, img)
    torch.manual_seed(0)
    assert torch.equal(augment(img), first)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(augment(img, generator=g1), augment(img, generator=g2))


def test_randaugment_forward_replays_its_policy_with_pil():
    augment = FixMatchRandAugment()
    img = _images(3)[1]
    for seed in range(30):
        policy = augment.sample(torch.Generator().manual_seed(seed))
        out = augment(img, generator=torch.Generator().manual_seed(seed))
        expected = _to_pil(img)
        for name, magnitude, sign in policy:
            expected = _pil_op(expected, name, magnitude, sign)
        assert torch.equal(out, _from_pil(expected)), policy


def test_policy_draws_match_randaugment_mc():
    g = torch.Generator().manual_seed(0)
    always = [op for _ in range(2000) for op in FixMatchRandAugment(apply_prob=1.0).sample(g)]
    assert len(always) == 4000
    assert {name for name, _, _ in always} == set(FIXMATCH_OPS)
    assert {magnitude for _, magnitude, _ in always} == set(range(1, 10))
    assert {sign for _, _, sign in always} == {-1, 1}
    half = [len(FixMatchRandAugment().sample(g)) for _ in range(2000)]
    assert 0.45 < sum(half) / (2 * len(half)) < 0.55  # each of the 2 ops applied with p = 0.5


@pytest.mark.parametrize("channels", [3, 1])
def test_cutout_fills_exactly_the_clipped_square(channels):
    cutout = Cutout(16)
    img = torch.randint(0, 127, (channels, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    before = img.clone()
    sides = set()
    for seed in range(200):
        out = cutout(img, generator=torch.Generator().manual_seed(seed))
        y0, x0 = divmod(int(torch.randint(32 * 32, (), generator=torch.Generator().manual_seed(seed))), 32)
        expected = img.clone()
        expected[:, max(0, y0 - 8) : y0 + 8, max(0, x0 - 8) : x0 + 8] = 127
        assert torch.equal(out, expected)
        filled = (out == 127).all(0)
        sides.add((int(filled.any(1).sum()), int(filled.any(0).sum())))
    assert torch.equal(img, before)  # a new tensor; the input is untouched
    assert (16, 16) in sides and any(h < 16 or w < 16 for h, w in sides)
    assert all(8 <= h <= 16 and 8 <= w <= 16 for h, w in sides)


def test_cutout_keeps_dtype_and_uses_the_global_rng():
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    torch.manual_seed(0)
    out = Cutout(16, fill=200)(img)
    assert out.dtype == torch.uint8 and out.shape == img.shape
    assert set(out.unique().tolist()) == {0, 200}
    torch.manual_seed(0)
    assert torch.equal(Cutout(16, fill=200)(img), out)
