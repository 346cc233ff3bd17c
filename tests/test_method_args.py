"""Constructor arguments of every method: the data configures the model, choices are typed,
nested options parse as values, every argument has help, ranges and streams are checked."""
from __future__ import annotations

import inspect
import types
import typing

import pytest
import torch
from jsonargparse import ArgumentParser

import tiny
import sslzoo.methods as methods
from sslzoo.errors import ConfigError
from sslzoo.methods import SCAN, SSLMethod, FixMatch, MeanTeacher, SimCLR, SimMatch, Supervised
from sslzoo.choices import check_choice
from sslzoo.methods.clustering_eval import ClusterMethod
from sslzoo.methods.ranges import BELOW_ONE, POSITIVE, UNIT, check_range
from sslzoo.nets import BACKBONES, build_backbone

REGISTERED = [cls for cls in (getattr(methods, name) for name in methods.__all__) if inspect.isclass(cls) and issubclass(cls, SSLMethod)]
TINY = dict(num_classes=4, backbone="tiny_conv")
# Small heads for the methods that build one, so every class builds in well under a second.
SMALL = {
    "SwAV": dict(hidden_dim=16, projection_dim=8, num_prototypes=8), "Suave": dict(hidden_dim=16, projection_dim=8),
    "DINO": dict(hidden_dim=16, bottleneck_dim=8, out_dim=16), "Daino": dict(hidden_dim=16, bottleneck_dim=8),
    "SimCLR": dict(hidden_dim=16, projection_dim=8),
}
FREE_FORM_STRINGS = {"backbone", "init_from", "pretext", "neighbours_file"}  # names and paths, not choices


def tiny_method(cls, **kwargs):
    return cls(**{**TINY, **SMALL.get(cls.__name__, {}), **kwargs})


def model_parser(cls) -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "model")
    return parser


# ---- 1. the data configures the model ---------------------------------------------------------
def test_num_classes_left_unset_says_to_pass_the_datamodules():
    with pytest.raises(ConfigError, match=r"num_classes is not set: pass num_classes=datamodule.num_classes"):
        FixMatch(backbone="tiny_mlp")
    for cls in (SCAN, methods.SwAV, methods.Suave, methods.DINO, methods.Daino):  # they size heads from it before the base does
        with pytest.raises(ConfigError, match="num_classes is not set"):
            cls(backbone="tiny_conv", **{k: v for k, v in SMALL.get(cls.__name__, {}).items() if k not in ("num_prototypes", "out_dim")})


@pytest.mark.parametrize("name, options, first_conv", [
    ("wide_resnet", {"depth": 10, "widen_factor": 1}, lambda net: net.stem),
    ("cnn13", {}, lambda net: net.layers[0].conv),
    ("resnet18", {}, lambda net: net.conv1),
    ("resnet18", {"cifar_stem": True}, lambda net: net.conv1),
    ("wrn_28_2_mish", {}, lambda net: net.stem),
    ("tiny_conv", {}, lambda net: net.net[0]),
    ("timm:resnet18", {}, lambda net: net.model.conv1),
])  # fmt: skip
def test_input_channels_reach_every_backbone(name, options, first_conv):
    net = build_backbone(name, input_channels=1, **options)
    assert first_conv(net).in_channels == 1
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, net.feature_dim)


def test_grey_images_build_a_grey_network_and_tiny_mlp_sizes_its_input():
    method = FixMatch(num_classes=4, backbone="tiny_mlp", input_channels=1)
    assert method.network.backbone.net[1].in_features == 1 * 8 * 8 and method.input_channels == 1
    assert FixMatch(num_classes=4, backbone="tiny_mlp").network.backbone.net[1].in_features == 3 * 8 * 8  # None: RGB
    old_style = FixMatch(num_classes=4, backbone="wide_resnet", backbone_options={"depth": 10, "widen_factor": 1, "input_channels": 1})
    assert old_style.network.backbone.stem.in_channels == 1  # backbone_options alone still works for Python callers


def test_conflicting_input_channels_are_refused():
    with pytest.raises(ConfigError, match="backbone_options input_channels=3 contradicts input_channels=1"):
        FixMatch(num_classes=4, backbone="wide_resnet", input_channels=1, backbone_options={"depth": 10, "widen_factor": 1, "input_channels": 3})
    with pytest.raises(ConfigError, match="in_chans=3 contradicts input_channels=1"):
        build_backbone("timm:resnet18", input_channels=1, in_chans=3)


def test_a_backbone_that_takes_rgb_only_names_itself(monkeypatch):
    class RGBOnly(torch.nn.Module):
        feature_dim = 4

        def __init__(self, width: int = 4):
            super().__init__()

    monkeypatch.setitem(BACKBONES, "rgb_only", RGBOnly)
    assert isinstance(build_backbone("rgb_only"), RGBOnly)
    with pytest.raises(ConfigError, match="backbone 'rgb_only' takes 3-channel images only, but the images have 1"):
        build_backbone("rgb_only", input_channels=1)


def test_image_size_goes_to_timm_models_that_take_it_only():
    vit = build_backbone("timm:vit_tiny_patch16_224", image_size=32, patch_size=8)
    assert tuple(vit.model.patch_embed.img_size) == (32, 32)
    assert build_backbone("timm:resnet18", image_size=32).feature_dim == 512  # ResNet takes no img_size: ignored
    assert build_backbone("wide_resnet", image_size=32, depth=10, widen_factor=1).feature_dim == 64
    pinned = build_backbone("timm:vit_tiny_patch16_224", image_size=32, img_size=64, patch_size=8)
    assert tuple(pinned.model.patch_embed.img_size) == (64, 64)  # backbone_options' own img_size wins


# ---- 2. typed choices ----------------------------------------------------------------------------
def test_every_string_argument_of_every_method_is_a_choice_or_free_form():
    for cls in REGISTERED:
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass.__module__.split(".")[0] != "sslzoo":
                continue
            for name, hint in typing.get_type_hints(init).items():
                union = typing.get_origin(hint) in (typing.Union, types.UnionType)
                if str in (typing.get_args(hint) if union else (hint,)):
                    assert name in FREE_FORM_STRINGS, f"{klass.__name__}.{name} is a free str: type it as a Literal of its choices"


def test_the_parser_refuses_a_wrong_choice_and_lists_the_choices():
    parser = model_parser(FixMatch)
    with pytest.raises(Exception, match=r"Expected a typing.Literal\['sgd', 'lars', 'adam', 'adamw'\]. Got value: adamm"):
        parser.parse_args(["--model.optimizer", "adamm"])
    with pytest.raises(Exception, match=r"Literal\['average', 'copy', 'own'\]"):
        parser.parse_args(["--model.ema_buffers", "mine"])
    assert parser.parse_args(["--model.scheduler", "warmup_cosine"]).model.scheduler == "warmup_cosine"


def test_the_command_refuses_a_wrong_choice(tmp_path, capsys):
    from sslzoo.cli import build_cli

    with pytest.raises(SystemExit):
        build_cli(tiny.toy_cli_args(tmp_path, "--model.optimizer", "adamm"), run=False)
    assert "Expected a typing.Literal['sgd', 'lars', 'adam', 'adamw']. Got value: adamm" in capsys.readouterr().err


@pytest.mark.parametrize("cls, argument, value, listed", [
    (FixMatch, "optimizer", "adamm", "'sgd', 'lars', 'adam', 'adamw'"),
    (FixMatch, "scheduler", "cosine", "'fixmatch_cosine'"),
    (FixMatch, "ema_schedule", "linear", "'constant', 'cosine'"),
    (FixMatch, "head", "mlp", "'linear', 'weight_norm'"),
    (FixMatch, "lr_scaling", "square", "'none', 'linear', 'sqrt'"),
    (SimMatch, "evaluate", "teacher", "'ema', 'student'"),
    (methods.Suave, "mixed_weight", "all", "'rows', 'official'"),
    (methods.SwAV, "probe_reduction", "max", "'sum', 'mean'"),
    (SimCLR, "anchors", "second", "'both', 'first'"),
    (SCAN, "head_selection", "val_acc", "'val_scan_loss', 'train_loss'"),
    (SCAN, "mining_backend", "annoy", "'auto', 'faiss', 'torch'"),
    (methods.BoostedFixMatch, "weak_forward", "together", "'separate', 'joint'"),
    (methods.BoostedFixMatch, "rotation_head", "conv", "'mlp', 'linear'"),
])  # fmt: skip
def test_python_callers_get_the_same_choices(cls, argument, value, listed):
    with pytest.raises(ConfigError, match=rf"{argument} must be one of .*{listed}.*; got '{value}'"):
        tiny_method(cls, **{argument: value})


def test_check_choice_reads_a_literal():
    assert check_choice("mode", "a", typing.Literal["a", "b"]) == "a"
    with pytest.raises(ConfigError, match="mode must be one of 'a', 'b'; got 'c'"):
        check_choice("mode", "c", typing.Literal["a", "b"])


# ---- 3. nested options are values -----------------------------------------------------------------
def test_dotted_nested_options_parse_as_numbers_and_booleans():
    parser = model_parser(FixMatch)
    config = parser.parse_args([
        "--model.backbone_options.widen_factor", "2", "--model.backbone_options.bn_momentum", "0.5",
        "--model.backbone_options.conv_bias", "true", "--model.backbone_options.activation", "mish",
        "--model.lars_options.trust_coeff", "0.02", "--model.compile_options.mode", "max-autotune",
    ])  # fmt: skip
    assert config.model.backbone_options == {"widen_factor": 2, "bn_momentum": 0.5, "conv_bias": True, "activation": "mish"}
    assert config.model.lars_options == {"trust_coeff": 0.02} and config.model.compile_options == {"mode": "max-autotune"}
    whole = parser.parse_args(["--model.backbone_options", "{depth: 10, widen_factor: 1, stages: null}"])
    assert whole.model.backbone_options == {"depth": 10, "widen_factor": 1, "stages": None}


def test_a_yaml_config_dict_still_loads(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  backbone: wide_resnet\n  backbone_options: {depth: 10, widen_factor: 1, conv_bias: true}\n")
    parser = model_parser(FixMatch)
    parser.add_argument("--config", action="config")
    assert parser.parse_args(["--config", str(config)]).model.backbone_options == {"depth": 10, "widen_factor": 1, "conv_bias": True}


@pytest.mark.parametrize("kwargs, message", [
    (dict(backbone="wide_resnet", backbone_options={"depth": 10, "widen_factr": 1}),
     r"unknown backbone_options 'widen_factr' for backbone 'wide_resnet'; did you mean 'widen_factor'\? the valid keys are: depth, widen_factor"),
    (dict(backbone="wrn_28_2", backbone_options={"depth": 16}), r"backbone 'wrn_28_2' fixes depth; use backbone 'wide_resnet' to choose it"),
    (dict(backbone="resnet18", backbone_options={"depth": 50}), r"backbone 'resnet18' fixes depth; remove it from backbone_options"),
    (dict(backbone="tiny_conv", backbone_options={"feature_dims": 8}), r"did you mean 'feature_dim'"),
    (dict(backbone="timm:resnet5O"), r"timm has no model 'resnet5O'; close names: resnet50"),
    (dict(backbone="timm:resnet18", backbone_options={"drop_rat": 0.1}), r"timm model 'resnet18' does not take one of backbone_options \['drop_rat'\]"),
    (dict(optimizer="lars", lars_options={"trust_coef": 0.02}), r"unknown lars_options 'trust_coef'; did you mean 'trust_coeff'\?"),
    (dict(lars_options={"trust_coeff": 0.02}), r"lars_options are for optimizer 'lars', not 'sgd'"),
    (dict(compile_options={"mod": "max-autotune"}), r"unknown compile_options 'mod' for torch.compile; did you mean 'mode'\?"),
])  # fmt: skip
def test_misspelt_option_keys_are_refused_with_the_close_match(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FixMatch(**{**TINY, **kwargs})


# ---- 4. help for every argument ------------------------------------------------------------------
@pytest.mark.parametrize("cls", REGISTERED, ids=lambda cls: cls.__name__)
def test_every_argument_has_help(cls):
    actions = [a for a in model_parser(cls)._actions if a.dest.startswith("model.")]
    assert len(actions) > 20
    without = [a.dest for a in actions if not (a.help or "").strip()]
    assert not without, f"{cls.__name__}: no help for {without}; document them in the class's Args:"


def test_help_reads_like_the_papers_table():
    helps = {a.dest: a.help for a in model_parser(FixMatch)._actions}
    assert "tau" in helps["model.threshold"] and "0.95" in helps["model.threshold"]
    assert "follows the data" in helps["model.num_classes"]  # inherited from SSLMethod's Args


# ---- 5. ranges -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs, message", [
    (FixMatch, dict(threshold=1.5), r"threshold=1.5 must be in \[0, 1\] \(a softmax confidence"),
    (FixMatch, dict(lambda_u=-1.0), r"lambda_u=-1.0 must be >= 0"),
    (FixMatch, dict(lr=-0.03), r"lr=-0.03 must be >= 0"),
    (FixMatch, dict(weight_decay=-1e-4), r"weight_decay=-0.0001 must be >= 0"),
    (FixMatch, dict(momentum=1.0), r"momentum=1.0 must be in \[0, 1\)"),
    (FixMatch, dict(ema_decay=1.0), r"ema_decay=1.0 must be in \[0, 1\)"),
    (FixMatch, dict(warmup_steps=-1), r"warmup_steps=-1 must be >= 0"),
    (FixMatch, dict(final_lr_fraction=2.0), r"final_lr_fraction=2.0 must be in \[0, 1\]"),
    (Supervised, dict(input_channels=0), r"input_channels=0 must be >= 1"),
    (MeanTeacher, dict(rampup_epochs=-5), r"rampup_epochs=-5 must be >= 0"),
    (MeanTeacher, dict(ema_decay=None), r"MeanTeacher's teacher is the EMA of the student: set ema_decay"),
    (methods.LCMeanTeacher, dict(epsilon=0.0), r"epsilon=0.0 must be > 0"),
    (SimMatch, dict(temperature=0.0), r"temperature=0.0 must be > 0"),
    (SimMatch, dict(alpha=1.2), r"alpha=1.2 must be in \[0, 1\]"),
    (SimMatch, dict(bank_momentum=1.0), r"bank_momentum=1.0 must be in \[0, 1\)"),
    (methods.SwAV, dict(epsilon=-0.05), r"epsilon=-0.05 must be > 0"),
    (methods.Suave, dict(label_smoothing=1.0), r"label_smoothing=1.0 must be in \[0, 1\)"),
    (methods.DINO, dict(teacher_temperature=0.0), r"teacher_temperature=0.0 must be > 0"),
    (methods.DINO, dict(center_momentum=1.5), r"center_momentum=1.5 must be in \[0, 1\)"),
    (SCAN, dict(entropy_weight=-5.0), r"entropy_weight=-5.0 must be >= 0"),
    (SCAN, dict(num_heads=0), r"num_heads=0 must be >= 1"),
    (methods.SCANSelfLabel, dict(threshold=1.0), r"threshold=1.0 must be in \[0, 1\)"),
    (methods.BoostedFixMatch, dict(alpha=0.0), r"alpha=0.0 must be in \(0, 1\]"),
    (methods.BoostedFixMatch, dict(clustering_momentum=-0.1), r"clustering_momentum=-0.1 must be in \[0, 1\)"),
])  # fmt: skip
def test_values_outside_their_range_are_refused_by_name(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        tiny_method(cls, **kwargs)


def test_range_edges():
    assert check_range("t", None, POSITIVE) is None  # unset optional values pass
    assert check_range("t", 1.0, UNIT) == 1.0 and check_range("t", 0.0, BELOW_ONE) == 0.0
    with pytest.raises(ConfigError, match="t=0 must be > 0"):
        check_range("t", 0, POSITIVE)
    assert tiny_method(FixMatch, threshold=0.0).threshold == 0.0  # keep every pseudo-label (tests and ablations)


# ---- 6. the streams a method trains on --------------------------------------------------------------
def _fit_one_step(tmp_path, method, **data):
    datamodule = tiny.tiny_datamodule(tiny.tiny_npz(tmp_path), **data)
    tiny.tiny_trainer(tmp_path, max_steps=1).fit(method, datamodule=datamodule)


def test_fixmatch_without_unlabeled_images_says_to_set_mu(tmp_path):
    with pytest.raises(ConfigError, match=r"FixMatch trains on unlabeled images, but the unlabeled batch is 0: set --data.init_args.unlabeled_ratio \(mu\) > 0"):
        _fit_one_step(tmp_path, tiny_method(FixMatch, backbone="tiny_mlp"), unlabeled_ratio=0)
    with pytest.raises(ConfigError, match=r"unlabeled_batch_size > 0"):
        _fit_one_step(tmp_path, tiny_method(FixMatch, backbone="tiny_mlp"), unlabeled_batch_size=0)


def test_an_emptied_labeled_stream_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"MeanTeacher trains on labeled images, but --data.init_args.labeled_views is empty"):
        _fit_one_step(tmp_path, tiny_method(MeanTeacher, backbone="tiny_mlp"), labeled_views=[])


def test_methods_without_that_stream_train(tmp_path):
    _fit_one_step(tmp_path, tiny_method(Supervised, backbone="tiny_mlp"), unlabeled_ratio=0)
    assert SimCLR.required_streams(tiny_method(SimCLR)) == ("unlabeled",)  # its labeled rows only feed the probe
    assert tiny_method(FixMatch).required_streams() == ("labeled", "unlabeled")


# ---- 7. the metric a best checkpoint is selected on ---------------------------------------------------
@pytest.mark.parametrize("cls", REGISTERED, ids=lambda cls: cls.__name__)
def test_checkpoint_metric_is_logged_by_validation(cls, tmp_path):
    if issubclass(cls, ClusterMethod):
        assert cls.checkpoint_metric is None  # clustering accuracy would select on labels
        return
    assert cls.checkpoint_metric == "val/acc"
    method = tiny_method(cls)
    trainer = tiny.tiny_trainer(tmp_path, limit_val_batches=1)
    trainer.validate(method, datamodule=tiny.tiny_datamodule(tiny.tiny_npz(tmp_path)), verbose=False)
    assert cls.checkpoint_metric in trainer.callback_metrics
