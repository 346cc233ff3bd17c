"""Every value of a shipped recipe that is not the library default says where it comes from.

A recipe under experiments/ must be the recipe behind its paper's table. So each value that
differs from the default of the class it configures (the method, the datamodule, the Trainer,
the best-checkpoint callback) carries a comment that starts with its source:

    lr: 0.03          # paper: section 4, "lr 0.03"
    cutout: 16        # code: fixmatch libml/augment.py cutout_numpy(size=16); paper: 0.5 x size
    num_workers: 8    (operational keys need none, see OPERATIONAL)
    max_epochs: 20    # ours: ...   /   # peer: USB's config ...

Tags: `paper` (table / section / equation), `code` (official repository file and flag or line),
`peer` (another library's choice), `ours` (our choice or guess, said as such). The comment may
sit on the key's line, on any line of its (multi-line) value, or on the comment line(s) just
above the key. Files under sweeps/ and loggers/ are search spaces and logging add-ons, not recipes.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import lightning as L
import pytest
import yaml

from sslzoo.checkpointing import BestCheckpoint

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
NOT_RECIPES = ("sweeps", "loggers")
SOURCE = re.compile(r"#\s*(paper|code|peer|ours)\b")
# Where a run writes, reads and how many loader workers: the user's machine, not the recipe.
OPERATIONAL = {"class_path", "default_root_dir", "root", "download", "num_workers", "eval_batch_size", "logger", "dirpath"}
# The CLI's own defaults for the best-checkpoint callback (sslzoo/cli.py add_arguments_to_parser).
CHECKPOINT_DEFAULTS = {"monitor": "auto", "mode": "max", "filename": "best-{epoch}-{step}", "auto_insert_metric_name": False}


def recipe_files() -> list[Path]:
    return sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.relative_to(EXPERIMENTS).parts[0] not in NOT_RECIPES)


class _Required:
    """The "default" of an argument without one: no value equals it, so every value needs a source."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED = _Required()


def signature_defaults(cls) -> dict:
    """Defaults of every __init__ argument along the MRO (a subclass's default wins); a required
    argument (ArrayDataModule's `path`) maps to REQUIRED."""
    defaults: dict = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, parameter in list(inspect.signature(init).parameters.items())[1:]:  # not self
            if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            empty = parameter.default is inspect.Parameter.empty
            defaults.setdefault(name, REQUIRED if empty else parameter.default)
    return defaults


def import_class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def normalised(value):
    if isinstance(value, (tuple, list)):
        return [normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    return value


def section_defaults(top: str, node: dict) -> tuple[dict, dict]:
    """(the values under `top`, their defaults) for one top-level section of a recipe."""
    if top in ("model", "data"):
        return node.get("init_args") or {}, signature_defaults(import_class(node["class_path"]))
    if top == "trainer":
        return node, signature_defaults(L.Trainer)
    if top == "checkpoint":
        return node, {**signature_defaults(BestCheckpoint), **CHECKPOINT_DEFAULTS}
    raise AssertionError(f"top-level key {top!r}: add its defaults to tests/test_config_sources.py")


def comments_near(lines: list[str], key_node, value_node) -> str:
    """The comments on a key's line, its value's lines and the comment lines just above it."""
    first, last = key_node.start_mark.line, max(value_node.end_mark.line, key_node.start_mark.line)
    if value_node.end_mark.column == 0 and last > first:
        last -= 1  # a block value ends at the start of the next line
    found = [line.split("#", 1)[1] for line in lines[first:last + 1] if "#" in line]
    above = first - 1
    while above >= 0 and lines[above].strip().startswith("#"):
        found.append(lines[above].split("#", 1)[1])
        above -= 1
    return " ".join("#" + text for text in found)


def unsourced_values(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    root = yaml.compose(text)
    config = yaml.safe_load(text)
    missing = []
    for top_key, top_node in root.value:
        top = top_key.value
        if top == "seed_everything":
            continue
        values, defaults = section_defaults(top, config[top])
        mapping = top_node
        if top in ("model", "data"):
            mapping = next(v for k, v in top_node.value if k.value == "init_args")
        for key_node, value_node in mapping.value:
            key = key_node.value
            if key in OPERATIONAL:
                continue
            if key not in defaults:
                missing.append(f"{top}.{key}: not an argument of the configured class")
                continue
            if normalised(values[key]) == normalised(defaults[key]):
                continue
            if not SOURCE.search(comments_near(lines, key_node, value_node)):
                missing.append(f"{top}.{key}: {values[key]!r} (default {defaults[key]!r}) has no '# paper:/code:/peer:/ours:' source")
    return missing


@pytest.mark.parametrize("path", recipe_files(), ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_every_non_default_value_has_its_source(path):
    missing = unsourced_values(path)
    assert not missing, f"{path.relative_to(REPO)}:\n  " + "\n  ".join(missing)


def test_the_rule_catches_an_unsourced_value(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "trainer:\n  max_epochs: 3\nmodel:\n  class_path: sslzoo.methods.FixMatch\n  init_args:\n"
        "    # paper: section 4\n    threshold: 0.9\n    lambda_u: 2.0\n    lr: 0.03\n"
        "data:\n  class_path: datamodules.CIFAR10DataModule\n  init_args:\n    num_workers: 3\n"
        "    labeled_views:     # ours: a test\n      - weak\n"
    )
    assert unsourced_values(recipe) == [
        "trainer.max_epochs: 3 (default None) has no '# paper:/code:/peer:/ours:' source",
        "model.lambda_u: 2.0 (default 1.0) has no '# paper:/code:/peer:/ours:' source",
    ]


def test_a_required_argument_is_an_argument_that_needs_a_source(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  class_path: datamodules.ArrayDataModule\n  init_args:\n    path: a.npz\n    name: digits  # ours: a test\n")
    assert unsourced_values(recipe) == ["data.path: 'a.npz' (default <required>) has no '# paper:/code:/peer:/ours:' source"]
