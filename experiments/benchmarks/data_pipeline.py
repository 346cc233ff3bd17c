"""Throughput of the augmentation views on CIFAR-sized images, per DataLoader worker count.

Measures our tensor views ('weak', 'strong', 'multicrop') and, in the same run, the
PIL FixMatch strong pipeline the way kekmodel / TorchSSL / USB write it
(PIL image -> flip -> reflect-pad crop -> RandAugmentMC + CutoutAbs -> ToTensor -> Normalize).

    python experiments/benchmarks/data_pipeline.py [--out experiments/benchmarks/data_pipeline.json]
        [--num-images N] [--workers 0,1,2]

Throughput = images through a torch DataLoader (batch 64, default collate) per second,
timed after a warm-up; per worker = total / max(1, workers). Each measurement stops
after --num-images images or --max-seconds, whichever comes first.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import PIL
import PIL.ImageDraw
import PIL.ImageEnhance
import PIL.ImageOps
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from datamodules.info import CIFAR10  # noqa: E402
from datamodules.views.randaugment import FIXMATCH_OPS, apply_op  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cifar10_subset.npz"
OUR_VIEWS = ("weak", "strong", "multicrop")


def ours_view(name: str):
    """Our pipeline for a view name: the one place that knows how views are built."""
    from datamodules.views import build_view

    return build_view(name, CIFAR10)


# --- The PIL reference: kekmodel/FixMatch-pytorch dataset/randaugment.py, RandAugmentMC(2, 10) ---


def _float_level(v, max_v):
    return float(v) * max_v / 10


def _int_level(v, max_v):
    return int(v * max_v / 10)


def _random_sign(level):
    return -level if random.random() < 0.5 else level


def _affine(img, coeffs):
    return img.transform(img.size, Image.AFFINE, coeffs)


PIL_OPS = {
    "Identity": lambda img, v: img,
    "AutoContrast": lambda img, v: PIL.ImageOps.autocontrast(img),
    "Equalize": lambda img, v: PIL.ImageOps.equalize(img),
    "Rotate": lambda img, v: img.rotate(_random_sign(_int_level(v, 30))),
    "Solarize": lambda img, v: PIL.ImageOps.solarize(img, 256 - _int_level(v, 256)),
    "Color": lambda img, v: PIL.ImageEnhance.Color(img).enhance(_float_level(v, 0.9) + 0.05),
    "Contrast": lambda img, v: PIL.ImageEnhance.Contrast(img).enhance(_float_level(v, 0.9) + 0.05),
    "Brightness": lambda img, v: PIL.ImageEnhance.Brightness(img).enhance(_float_level(v, 0.9) + 0.05),
    "Sharpness": lambda img, v: PIL.ImageEnhance.Sharpness(img).enhance(_float_level(v, 0.9) + 0.05),
    "ShearX": lambda img, v: _affine(img, (1, _random_sign(_float_level(v, 0.3)), 0, 0, 1, 0)),
    "ShearY": lambda img, v: _affine(img, (1, 0, 0, _random_sign(_float_level(v, 0.3)), 1, 0)),
    "TranslateX": lambda img, v: _affine(img, (1, 0, int(_random_sign(_float_level(v, 0.3)) * img.size[0]), 0, 1, 0)),
    "TranslateY": lambda img, v: _affine(img, (1, 0, 0, 0, 1, int(_random_sign(_float_level(v, 0.3)) * img.size[1]))),
    "Posterize": lambda img, v: PIL.ImageOps.posterize(img, _int_level(v, 4) + 4),
}


def pil_cutout_abs(img, v):
    w, h = img.size
    x0, y0 = np.random.uniform(0, w), np.random.uniform(0, h)
    x0, y0 = int(max(0, x0 - v / 2.0)), int(max(0, y0 - v / 2.0))
    x1, y1 = int(min(w, x0 + v)), int(min(h, y0 + v))
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (127, 127, 127))
    return img


class PilRandAugmentMC:
    def __init__(self, n: int = 2, m: int = 10):
        self.n, self.m = n, m
        self.pool = list(PIL_OPS.values())

    def __call__(self, img):
        for op in random.choices(self.pool, k=self.n):
            v = np.random.randint(1, self.m)
            if random.random() < 0.5:
                img = op(img, v)
        return pil_cutout_abs(img, 16)


def pil_strong_view():
    return transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(32, padding=int(32 * 0.125), padding_mode="reflect"),
            PilRandAugmentMC(n=2, m=10),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10.mean, CIFAR10.std),
        ]
    )


# --- Datasets and timing -------------------------------------------------------------------


class TensorImages(Dataset):
    """uint8 (C, H, W) tensors, as our datamodules hand them to the views."""

    def __init__(self, images_nhwc: np.ndarray, view):
        self.images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()
        self.view = view

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.view(self.images[index])


class PilImages(Dataset):
    """numpy HWC arrays turned into PIL images per item, as kekmodel/TorchSSL/USB do."""

    def __init__(self, images_nhwc: np.ndarray, view):
        self.images = images_nhwc
        self.view = view

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.view(Image.fromarray(self.images[index]))


def _batch_size(batch) -> int:
    return len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)


def measure(dataset: Dataset, workers: int, batch_size: int, warmup_batches: int, max_seconds: float) -> dict:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    batches = iter(loader)
    for _ in range(warmup_batches):
        next(batches)
    images, start = 0, time.perf_counter()
    for batch in batches:
        images += _batch_size(batch)
        if time.perf_counter() - start > max_seconds:
            break
    seconds = time.perf_counter() - start
    del batches
    rate = images / seconds
    return {
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(rate, 1),
        "images_per_s_per_worker": round(rate / max(1, workers), 1),
    }


def op_timings(image_hwc: np.ndarray, magnitude: int = 5, number: int = 500) -> dict:
    """Microseconds per op on one image, single thread: ours (uint8 tensor) vs PIL (PIL image)."""
    tensor = torch.from_numpy(image_hwc).permute(2, 0, 1).contiguous()
    pil = Image.fromarray(image_hwc)

    def best(fn):
        fn()
        return round(min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6, 1)

    return {
        name: {"ours_us": best(lambda: apply_op(tensor, name, magnitude)), "pil_us": best(lambda: PIL_OPS[name](pil, magnitude))}
        for name in FIXMATCH_OPS
    }


def load_images(num_images: int) -> tuple[np.ndarray, dict]:
    if DATA.exists():
        x = np.load(DATA)["x_train"]
        rows = np.random.default_rng(0).permutation(len(x))[:num_images]  # rows are sorted by class
        return np.ascontiguousarray(x[rows]), {"source": "cifar10_subset.npz", "path": str(DATA)}
    x = np.random.default_rng(0).integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    return x, {"source": "random uint8", "path": None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "benchmarks" / "data_pipeline.json")
    parser.add_argument("--num-images", type=int, default=5000, help="images per measurement at most")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-batches", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=8.0, help="time budget per measurement")
    parser.add_argument("--skip-op-timings", action="store_true")
    args = parser.parse_args(argv)
    worker_counts = [int(w) for w in args.workers.split(",")]

    torch.set_num_threads(1)  # DataLoader workers run single-threaded too
    images, data_info = load_images(args.num_images)
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "main_process_torch_threads": torch.get_num_threads(),
            # Other processes on the machine skew every number; compare within one run only.
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "data": {**data_info, "num_images": len(images), "image_shape": list(images.shape[1:])},
        "settings": {
            "batch_size": args.batch_size,
            "warmup_batches": args.warmup_batches,
            "max_seconds_per_measurement": args.max_seconds,
            "workers": worker_counts,
        },
        "views": {},
    }

    pipelines = {name: TensorImages(images, ours_view(name)) for name in OUR_VIEWS}
    pipelines["pil_strong"] = PilImages(images, pil_strong_view())
    for name, dataset in pipelines.items():
        result["views"][name] = {}
        for workers in worker_counts:
            stats = measure(dataset, workers, args.batch_size, args.warmup_batches, args.max_seconds)
            result["views"][name][str(workers)] = stats
            print(f"{name:10s} workers={workers}: {stats['images_per_s']:9.1f} images/s "
                  f"({stats['images_per_s_per_worker']:.1f} per worker)", flush=True)

    result["pil_reference_strong"] = result["views"]["pil_strong"]
    result["ratio_ours_strong_over_pil"] = {
        w: round(result["views"]["strong"][w]["images_per_s"] / result["views"]["pil_strong"][w]["images_per_s"], 2)
        for w in result["views"]["strong"]
    }
    print("ours strong / PIL strong:", result["ratio_ours_strong_over_pil"])
    if not args.skip_op_timings:
        result["per_op_us"] = op_timings(images[0])
        for name, t in result["per_op_us"].items():
            print(f"{name:13s} ours {t['ours_us']:7.1f} us   PIL {t['pil_us']:7.1f} us")

    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
