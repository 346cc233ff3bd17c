"""FixMatch RandAugment and Cutout on uint8 tensors, checked against PIL.

Tolerance: none for the "pytorch_port" variant: every op must equal its PIL definition
(kekmodel's ``fixmatch_augment_pool`` with a grey fill for the geometric ops) pixel for pixel.
The "fixmatch_tf" variant is checked against google-research/fixmatch's ops as its
``apply_policy`` runs them (RGBA images, transparent fill read back as 127.5 grey): exact on
every pixel the image covers, within half a grey level on the fill.
"""
import numpy as np
import pytest
import torch

from datamodules.views.cutout import Cutout
from datamodules.views.randaugment import FIXMATCH_OPS, GEOMETRIC_OPS, RANDAUGMENT_VARIANTS, FixMatchRandAugment, apply_op, op_parameter

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


def _official_tf_op(img: torch.Tensor, name: str, v: int, sign: int) -> torch.Tensor:
    """google-research/fixmatch third_party/auto_augment/augmentations.py, one op of the RA
    policy as ``apply_policy`` runs it: ``pil_wrap`` (RGBA), the op with its level -> parameter
    formula, ``pil_unwrap`` (alpha 0 -> 0 in [-1, 1], i.e. grey 127.5). Float grey levels."""
    pil = Image.fromarray(img.permute(1, 2, 0).numpy()).convert("RGBA")
    float_parameter = lambda maxval: float(v) * maxval / 10  # noqa: E731
    int_parameter = lambda maxval: int(v * maxval / 10)  # noqa: E731
    on_rgb = lambda op: lambda im: op(im.convert("RGB")).convert("RGBA")  # noqa: E731
    enhance = lambda enhancer: lambda im: enhancer(im).enhance(float_parameter(1.8) + 0.1)  # noqa: E731
    affine = lambda coeffs: lambda im: im.transform(im.size, Image.AFFINE, coeffs)  # noqa: E731
    ops = {
        "Identity": lambda im: im,
        "AutoContrast": on_rgb(ImageOps.autocontrast),
        "Equalize": on_rgb(ImageOps.equalize),
        "Rotate": lambda im: im.rotate(sign * int_parameter(30)),
        "Posterize": on_rgb(lambda im: ImageOps.posterize(im, 4 - int_parameter(4))),
        "Solarize": on_rgb(lambda im: ImageOps.solarize(im, 256 - int_parameter(256))),
        "Color": enhance(ImageEnhance.Color),
        "Contrast": enhance(ImageEnhance.Contrast),
        "Brightness": enhance(ImageEnhance.Brightness),
        "Sharpness": enhance(ImageEnhance.Sharpness),
        "ShearX": affine((1, sign * float_parameter(0.3), 0, 0, 1, 0)),
        "ShearY": affine((1, 0, 0, sign * float_parameter(0.3), 1, 0)),
        "TranslateX": affine((1, 0, sign * int_parameter(10), 0, 1, 0)),
        "TranslateY": affine((1, 0, 0, 0, 1, sign * int_parameter(10))),
    }
    rgba = np.asarray(ops[name](pil), dtype=np.float64)
    rgb = rgba[..., :3].copy()
    rgb[rgba[..., 3] == 0] = 127.5
    return torch.from_numpy(rgb).permute(2, 0, 1)


@pytest.mark.parametrize("name", FIXMATCH_OPS)
def test_fixmatch_tf_op_equals_the_official_op(name):
    signs = (1, -1) if name in GEOMETRIC_OPS else (1,)
    for img in _images(3):
        for magnitude in (1, 2, 4, 5, 9):
            for sign in signs:
                out = apply_op(img, name, magnitude, sign, fill=128, variant="fixmatch_tf")
                error = (out.double() - _official_tf_op(img, name, magnitude, sign)).abs().max()
                assert error <= 0.5, (name, tuple(img.shape), magnitude, sign, float(error))


def test_variant_ranges_by_hand():
    """The ranges of both sources at magnitudes 1 and 9, on a 96 px image (STL-10)."""
    tf = lambda name, v: op_parameter(name, v, 1, 96, 96, "fixmatch_tf")  # noqa: E731
    port = lambda name, v: op_parameter(name, v, 1, 96, 96, "pytorch_port")  # noqa: E731
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert (tf(name, 1), tf(name, 9)) == pytest.approx((0.28, 1.72))  # 0.1 + 1.8 v / 10
        assert (port(name, 1), port(name, 9)) == pytest.approx((0.14, 0.86))  # 0.05 + 0.9 v / 10
    assert [tf("Posterize", v) for v in range(1, 10)] == [4, 4, 3, 3, 2, 2, 2, 1, 1]
    assert [port("Posterize", v) for v in range(1, 10)] == [4, 4, 5, 5, 6, 6, 6, 7, 7]
    assert (tf("TranslateX", 9), port("TranslateX", 9), op_parameter("TranslateY", 9, -1, 32, 32, "pytorch_port")) == (9, 25, -8)
    for name, values in {"Rotate": (3, 27), "Solarize": (231, 26), "ShearX": (0.03, 0.27)}.items():
        assert (tf(name, 1), tf(name, 9)) == (port(name, 1), port(name, 9)) == pytest.approx(values)
    assert set(RANDAUGMENT_VARIANTS["fixmatch_tf"]) == set(RANDAUGMENT_VARIANTS["pytorch_port"]) == set(FIXMATCH_OPS)


def test_fixmatch_tf_translates_in_pixels_whatever_the_size():
    img = torch.arange(96, dtype=torch.uint8).repeat(3, 96, 1)  # column index
    for variant, shift in (("fixmatch_tf", 9), ("pytorch_port", 25)):
        out = apply_op(img, "TranslateX", 9, 1, variant=variant)
        assert torch.equal(out[:, :, : 96 - shift], img[:, :, shift:]) and (out[:, :, 96 - shift :] == 128).all()


def test_randaugment_variant_reaches_every_op_and_rejects_unknown_names():
    img = _images(3)[1]
    augment = FixMatchRandAugment(variant="fixmatch_tf")
    for seed in range(10):
        out = augment(img, generator=torch.Generator().manual_seed(seed))
        expected = img
        for name, magnitude, sign in augment.sample(torch.Generator().manual_seed(seed)):
            expected = apply_op(expected, name, magnitude, sign, variant="fixmatch_tf")
        assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="unknown RandAugment variant 'tf'; choose one of: pytorch_port, fixmatch_tf"):
        FixMatchRandAugment(variant="tf")
    with pytest.raises(ValueError, match="unknown RandAugment variant"):
        apply_op(img, "Rotate", 3, variant="ra")


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
