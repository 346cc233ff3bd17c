"""bf16 mixed precision (sensitive math in float32, state kept in float32) and the `compile` flag."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import lightning as L
import pytest
import torch
import torch.nn.functional as F

import sslzoo.functional
import sslzoo.methods
import tiny
from sslzoo.functional import (
    aggregate, align_distribution, assign_batch_targets, clustering_distances, clustering_loss, confidence_based_cross_entropy,
    confident_labels, confident_pseudo_labels, cross_entropy, cross_view_cross_entropy, entropy, flat_pair_distances,
    instance_logits, local_clustering_loss, local_clustering_loss_of, masked_cross_entropy, mean_squared_distances,
    mine_neighbours, neighbour_loss, nt_xent, pair_clustering_loss, pair_distances, propagate_labels, queue_extended_codes,
    scan_loss, sharpened_targets, sinkhorn, soft_cross_entropy, softmax_kl, softmax_mse, softmax_probs, unfold,
)
from sslzoo.functional.cluster_targets import target_distances
from sslzoo.methods import (
    DINO, BoostedFixMatch, BoostedMeanTeacher, BoostedSimMatch, Daino, FixMatch, LCMeanTeacher, MeanTeacher, SCAN, SCANSelfLabel,
    SimCLR, SimMatch, SSLMethod, Suave, Supervised, SwAV,
)

BF16 = torch.bfloat16


# ---- the decorated functions ------------------------------------------------------------
def _bf16_values(*shape, seed, scale=1.0):
    """float32 values that bfloat16 holds exactly, so both runs see the same numbers."""
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale).to(BF16).float()


def _probs(*shape, seed):
    return _bf16_values(*shape, seed=seed, scale=3.0).softmax(dim=-1).to(BF16).float()


def _unit(*shape, seed):
    return F.normalize(_bf16_values(*shape, seed=seed), dim=-1).to(BF16).float()


LABELS = torch.tensor([0, 1, 2, 3, 4, 0])
BANK_LABELS = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
SCORES = _bf16_values(6, 5, seed=1, scale=0.5)

# name -> (function, positional arguments with float32 tensors exactly representable in bf16)
CASES = {
    "cross_entropy": (cross_entropy, (_bf16_values(6, 5, seed=0, scale=5), LABELS)),
    "soft_cross_entropy": (soft_cross_entropy, (_bf16_values(6, 5, seed=0, scale=10), _probs(6, 5, seed=2))),
    "masked_cross_entropy": (masked_cross_entropy, (_bf16_values(6, 5, seed=0, scale=5), LABELS, torch.tensor([1, 0, 1, 1, 0, 1.0]))),
    "softmax_mse": (softmax_mse, (_bf16_values(6, 5, seed=0, scale=3), _bf16_values(6, 5, seed=3, scale=3))),
    "softmax_kl": (softmax_kl, (_bf16_values(6, 5, seed=0, scale=3), _bf16_values(6, 5, seed=3, scale=3))),
    "cross_view_cross_entropy": (
        cross_view_cross_entropy,
        ([_bf16_values(6, 5, seed=s, scale=10) for s in (4, 5, 6)], [_probs(6, 5, seed=7), _probs(6, 5, seed=8)], [0, 1]),
    ),
    "softmax_probs": (softmax_probs, (SCORES, 0.1)),
    "sharpened_targets": (sharpened_targets, (_bf16_values(6, 5, seed=1, scale=0.1), _bf16_values(1, 5, seed=9, scale=0.1), 0.04)),
    "confident_labels": (confident_labels, (_probs(6, 5, seed=2), 0.5)),
    "confident_pseudo_labels": (confident_pseudo_labels, (_bf16_values(6, 5, seed=0, scale=3), 0.5)),
    "entropy": (entropy, (_probs(6, 5, seed=2),)),
    "scan_loss": (scan_loss, (_bf16_values(6, 5, seed=0, scale=3), _bf16_values(6, 5, seed=3, scale=3), 5.0)),
    "confidence_based_cross_entropy": (confidence_based_cross_entropy, (_bf16_values(6, 5, seed=0, scale=3), _bf16_values(6, 5, seed=3), 0.3)),
    "sinkhorn": (sinkhorn, (SCORES, 0.05, 3)),
    "queue_extended_codes": (queue_extended_codes, (SCORES, _unit(5, 8, seed=10), _unit(12, 8, seed=11), 0.05, 3)),
    "nt_xent": (nt_xent, (_unit(4, 8, seed=12), _unit(4, 8, seed=13), 0.1)),
    "instance_logits": (instance_logits, (_unit(6, 8, seed=12), _unit(8, 8, seed=13), 0.1)),
    "align_distribution": (align_distribution, (_probs(6, 5, seed=2), _probs(5, seed=14))),
    "unfold": (unfold, (_probs(6, 5, seed=2), BANK_LABELS)),
    "aggregate": (aggregate, (_probs(6, 8, seed=15), BANK_LABELS, 5)),
    "propagate_labels": (propagate_labels, (_probs(6, 5, seed=2), _probs(6, 8, seed=15), BANK_LABELS, 0.9)),
    "mean_squared_distances": (mean_squared_distances, (_bf16_values(4, 8, seed=16, scale=7), _bf16_values(6, 8, seed=17, scale=7))),
    "neighbour_loss": (neighbour_loss, (_bf16_values(4, 6, seed=18, scale=40).abs(), 50.0)),
    "pair_clustering_loss": (pair_clustering_loss, (_bf16_values(4, 8, seed=16, scale=7), _bf16_values(6, 8, seed=17, scale=7), 50.0)),
    "clustering_distances": (clustering_distances, (_bf16_values(4, 8, seed=16, scale=7), _bf16_values(6, 8, seed=17, scale=7))),
    "local_clustering_loss_of": (local_clustering_loss_of, ((_bf16_values(4, 6, seed=18, scale=40).abs(), _bf16_values(6, 6, seed=19, scale=40).abs()), 50.0)),
    "local_clustering_loss": (local_clustering_loss, (_bf16_values(4, 8, seed=16, scale=7), _bf16_values(6, 8, seed=17, scale=7), 50.0)),
    "flat_pair_distances": (flat_pair_distances, ((_bf16_values(4, 6, seed=18, scale=40).abs(), _bf16_values(6, 6, seed=19, scale=40).abs()),)),
    "pair_distances": (pair_distances, (_bf16_values(4, 8, seed=16, scale=7), _bf16_values(6, 8, seed=17, scale=7))),
    "target_distances": (target_distances, (SCORES, torch.tensor([0, 2, 4]))),
    "assign_batch_targets": (assign_batch_targets, (_bf16_values(6, 5, seed=0, scale=3), torch.tensor([0, -1, 1, 2, -1, 4]), 0.5)),
    "clustering_loss": (clustering_loss, (_bf16_values(12, 5, seed=20), torch.tensor([0, -1, 1, 2, -1, 4]))),
    "mine_neighbours": (mine_neighbours, (_bf16_values(10, 8, seed=21), 3)),
}


def _to_bf16(value):
    if isinstance(value, torch.Tensor):
        return value.to(BF16) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_bf16(v) for v in value)
    return value


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _decorated_functions() -> set:
    found = set()
    for info in pkgutil.iter_modules(sslzoo.functional.__path__):
        module = importlib.import_module(f"sslzoo.functional.{info.name}")
        found |= {f for _, f in inspect.getmembers(module, inspect.isfunction) if getattr(f, "computes_in_float32", False)}
    return found


def test_every_float32_function_is_checked_below():
    assert _decorated_functions() == {function for function, _ in CASES.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_inputs_under_autocast_give_the_float32_result(name):
    function, args = CASES[name]
    expected = function(*args)
    with torch.autocast("cpu", dtype=BF16):
        result = function(*_to_bf16(args))
    result, expected = _tensors(result), _tensors(expected)
    assert len(result) == len(expected) > 0
    for got, want in zip(result, expected):
        assert got.dtype == want.dtype and got.dtype not in (BF16, torch.float16)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_gradient_reaches_the_bf16_activations():
    logits = _bf16_values(6, 5, seed=0, scale=10).requires_grad_()
    logits_bf16 = logits.detach().to(BF16).requires_grad_()
    soft_cross_entropy(logits / 0.1, _probs(6, 5, seed=2)).backward()
    with torch.autocast("cpu", dtype=BF16):
        soft_cross_entropy(logits_bf16 / 0.1, _probs(6, 5, seed=2).to(BF16)).backward()
    assert logits_bf16.grad.dtype == BF16
    torch.testing.assert_close(logits_bf16.grad, logits.grad.to(BF16))


@pytest.mark.parametrize("name, smallest_error", [("queue_extended_codes", 0.01), ("sharpened_targets", 0.01), ("nt_xent", 5e-4)])
def test_the_same_math_in_bf16_is_materially_different(name, smallest_error):
    """Without the decorator (`__wrapped__`) autocast runs the queue's matmul before Sinkhorn
    (eps 0.05), DINO's centring and sharpening (tau 0.04) and NT-Xent's similarities (tau 0.1)
    in bf16: their relative error exceeds `smallest_error`, against <= 1e-6 above."""
    function, args = CASES[name]
    expected = function(*args)
    with torch.autocast("cpu", dtype=BF16):
        in_bf16 = function.__wrapped__(*_to_bf16(args)).float()
    large = expected.abs() > 1e-3
    assert ((in_bf16 - expected).abs()[large] / expected.abs()[large]).max() > smallest_error


# ---- every method trains under bf16-mixed --------------------------------------------------
MULTICROP = dict(unlabeled_views=[{"name": "multicrop", "num_local": 2, "local_size": 4}], labeled_views=["weak"])
SMALL_SWAV = dict(num_classes=4, backbone="tiny_conv", hidden_dim=16, projection_dim=8)
SMALL_DINO = dict(num_classes=4, backbone="tiny_conv", hidden_dim=16, bottleneck_dim=8)
TINY_WRN = dict(backbone=tiny.TINY_BACKBONES["tiny_wrn"][0], backbone_options=tiny.TINY_BACKBONES["tiny_wrn"][1])
BOOST = dict(warmup_epochs=0, ssl_epochs=1, clustering_batch_size=8, num_augmentations=2, backbone="tiny_mlp")
BOOST_TRAINER = dict(max_steps=-1, max_epochs=3, reload_dataloaders_every_n_epochs=1)  # one step each of ssl, rotnet, clustering

# name -> (make the method, datamodule options, trainer options, state the steps must have written)
METHODS = {
    "Supervised": (lambda: Supervised(num_classes=4, **TINY_WRN), {}, {}, lambda m: True),
    "FixMatch": (lambda: FixMatch(num_classes=4, threshold=0.0, **TINY_WRN), {}, {}, lambda m: int(m.ema.num_updates) == 2),
    "MeanTeacher": (lambda: MeanTeacher(num_classes=4, **TINY_WRN), {}, {}, lambda m: int(m.ema.num_updates) == 2),
    "LCMeanTeacher": (
        lambda: LCMeanTeacher(num_classes=4, backbone="tiny_mlp", epsilon_quantile=0.5, lc_start_epoch=-1, lc_rampup_epochs=0),
        {}, {}, lambda m: float(m.epsilon) > 0 and float(m.reference_feature_var) > 0,
    ),
    "SimMatch": (
        lambda: SimMatch(num_classes=4, backbone="tiny_mlp", bank_warmup_epochs=0, da_length=4, threshold=0.0),
        {}, {}, lambda m: int(m.distribution_alignment.position) == 2 and len(m.bank) == 8,
    ),
    "Suave": (lambda: Suave(queue_length=8, momentum_teacher=True, ema_decay=0.9, **SMALL_SWAV), MULTICROP, {}, lambda m: m.queue.full),
    "SwAV": (lambda: SwAV(num_prototypes=6, queue_length=8, **SMALL_SWAV), MULTICROP, {}, lambda m: m.queue.full),
    "DINO": (lambda: DINO(out_dim=6, **SMALL_DINO), MULTICROP, {}, lambda m: bool(m.center.value.abs().sum() > 0)),
    "Daino": (lambda: Daino(**SMALL_DINO), MULTICROP, {}, lambda m: bool(m.center.value.abs().sum() > 0)),
    "BoostedFixMatch": (lambda: BoostedFixMatch(num_classes=4, **BOOST), {"steps_per_epoch": 1}, BOOST_TRAINER, lambda m: len(m.cluster_targets) > 0),
    "BoostedMeanTeacher": (lambda: BoostedMeanTeacher(num_classes=4, **BOOST), {"steps_per_epoch": 1}, BOOST_TRAINER, lambda m: len(m.cluster_targets) > 0),
    "BoostedSimMatch": (lambda: BoostedSimMatch(num_classes=4, **BOOST), {"steps_per_epoch": 1}, BOOST_TRAINER, lambda m: len(m.cluster_targets) > 0),
}
CHAINED = ("SimCLR", "SCAN", "SCANSelfLabel")  # pretext -> clustering -> self-labeling, below


def test_every_method_is_trained_under_bf16_below():
    registered = {name for name in sslzoo.methods.__all__ if inspect.isclass(getattr(sslzoo.methods, name))
                  and issubclass(getattr(sslzoo.methods, name), SSLMethod) and getattr(sslzoo.methods, name) is not SSLMethod}
    assert registered == set(METHODS) | set(CHAINED)


class StepLosses(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach())


def _fit_bf16(tmp_path, method, data_options=None, **trainer_options):
    """Train under bf16-mixed; returns the trainer, the dtypes the backbone produced and the step losses."""
    data = {"steps_per_epoch": 3, **(data_options or {})}
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path, num_train=48, num_test=16), **data)
    seen, losses = set(), StepLosses()
    method.network.backbone.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    trainer = tiny.tiny_trainer(tmp_path, precision="bf16-mixed", callbacks=[losses], **{"max_steps": 2, **trainer_options})
    trainer.fit(method, datamodule=datamodule)
    return trainer, seen, losses.losses


def _check_bf16_run(seen, losses, method, fresh):
    assert seen == {BF16}  # the networks really ran in bf16
    assert len(losses) >= 2 and all(torch.isfinite(loss) for loss in losses)
    initial = fresh.state_dict()
    for key, value in method.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == initial[key].dtype and value.dtype in (torch.float32, torch.float64), key
            assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_two_steps_in_bf16_mixed_with_float32_state(tmp_path, name):
    make, data_options, trainer_options, wrote_state = METHODS[name]
    L.seed_everything(0)
    method = make()
    trainer, seen, losses = _fit_bf16(tmp_path, method, data_options, **trainer_options)
    _check_bf16_run(seen, losses, method, make())
    assert wrote_state(method)


def _simclr():
    return SimCLR(num_classes=4, backbone="tiny_mlp", hidden_dim=16, projection_dim=8, optimizer="sgd", lr=0.05)


@pytest.fixture(scope="module")
def simclr_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("simclr")
    L.seed_everything(0)
    method = _simclr()
    trainer, seen, losses = _fit_bf16(tmp, method, {"unlabeled_batch_size": 8})
    _check_bf16_run(seen, losses, method, _simclr())
    trainer.save_checkpoint(tmp / "simclr.ckpt")
    return tmp / "simclr.ckpt"


@pytest.fixture(scope="module")
def scan_checkpoint(tmp_path_factory, simclr_checkpoint):
    tmp = tmp_path_factory.mktemp("scan")
    L.seed_everything(0)
    make = lambda: SCAN(num_classes=4, backbone="tiny_mlp", init_from=str(simclr_checkpoint), num_neighbours=3, num_heads=2)
    method = make()
    trainer, seen, losses = _fit_bf16(tmp, method, {"unlabeled_batch_size": 8})
    _check_bf16_run(seen, losses, method, make())
    assert len(method.neighbour_table) == 48
    trainer.save_checkpoint(tmp / "scan.ckpt")
    return tmp / "scan.ckpt"


def test_simclr_scan_and_self_labeling_train_in_bf16_mixed(tmp_path, scan_checkpoint):
    L.seed_everything(0)
    make = lambda: SCANSelfLabel(num_classes=4, backbone="tiny_mlp", init_from=str(scan_checkpoint), threshold=0.0)
    method = make()
    trainer, seen, losses = _fit_bf16(tmp_path, method, {"unlabeled_batch_size": 8})
    _check_bf16_run(seen, losses, method, make())
    assert float(trainer.callback_metrics["train/mask_rate"]) == 1.0


# ---- compile ------------------------------------------------------------------------------
COMPILED = dict(num_classes=4, backbone="tiny_mlp", ema_decay=0.9, compile=True, compile_options={"backend": "aot_eager"})


def test_compiled_backbones_train_and_their_checkpoint_loads_uncompiled(tmp_path):
    """aot_eager traces forward and backward like inductor without its C++ build (~2 minutes here)."""
    torch._dynamo.reset()
    L.seed_everything(0)
    method = FixMatch(**COMPILED)
    assert method.network.backbone._compiled_call_impl is not None and method.ema.module.backbone._compiled_call_impl is not None
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), steps_per_epoch=2)
    trainer = tiny.tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(method, datamodule=datamodule)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # the backbone did run compiled
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and int(method.ema.num_updates) == 2

    uncompiled_options = {k: v for k, v in COMPILED.items() if not k.startswith("compile")}
    assert list(method.state_dict()) == list(FixMatch(**uncompiled_options).state_dict())
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    uncompiled = FixMatch.load_from_checkpoint(tmp_path / "compiled.ckpt", compile=False, compile_options=None)
    assert uncompiled.network.backbone._compiled_call_impl is None
    x = torch.rand(5, 3, 8, 8)
    method.eval(), uncompiled.eval()
    with torch.no_grad():
        torch.testing.assert_close(uncompiled(x), method(x), rtol=0, atol=0)
        torch.testing.assert_close(uncompiled.network(x), method.network(x), rtol=0, atol=0)
