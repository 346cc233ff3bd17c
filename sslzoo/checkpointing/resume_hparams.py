"""A checkpoint's hyper-parameters against the command line's, before anything is built."""
from __future__ import annotations

# Values that only say how a run starts or runs, not what it computes: a resumed run restores its
# weights from the checkpoint, so where they came from (init_from) no longer matters.
RESUME_INDEPENDENT = frozenset({"init_from", "init_parts", "compile", "compile_options"})


def saved_model_config(checkpoint: dict) -> tuple[str | None, dict]:
    """(method class name, init arguments) a checkpoint was trained with. LightningCLI stores the
    parsed model config (`_class_path` + init args); the Python API stores the init args only."""
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if k != "_instantiator"}
    class_path = hparams.pop("_class_path", None)
    name = class_path.rsplit(".", 1)[-1] if class_path else (checkpoint.get("sslzoo") or {}).get("method")
    return name, hparams


def changed_hparams(saved: dict, current: dict) -> dict[str, tuple]:
    """{name: (checkpoint value, command-line value)} for the init arguments both sides set
    differently. Arguments only one side knows (a library version that added one) are not compared."""
    return {
        name: (saved[name], current[name])
        for name in sorted(saved.keys() & current.keys())
        if name not in RESUME_INDEPENDENT and _normalised(saved[name]) != _normalised(current[name])
    }


def _normalised(value):
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def describe(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{name}: checkpoint {old!r} vs command line {new!r}" for name, (old, new) in changes.items())
