"""The data configures the model: the datamodule's facts (read before any image is loaded) give
the model arguments that describe its input — classes, input channels, image size.

The CLI fills these arguments when a config leaves them unset and checks a pinned value against
the data; Python callers pass `**model_arguments(datamodule)` to the method."""
from __future__ import annotations

from jsonargparse import Namespace
from jsonargparse._util import import_object

from .errors import ConfigError

# model argument -> (DatasetInfo field, whether a pinned value must equal the data's)
FACTS = {"num_classes": ("num_classes", True), "input_channels": ("channels", True), "image_size": ("image_size", False)}


def model_arguments(datamodule) -> dict[str, int]:
    """{num_classes, input_channels, image_size} of `datamodule`'s data (its `peek_info()`)."""
    info = datamodule.peek_info()
    return {argument: int(getattr(info, field)) for argument, (field, _) in FACTS.items() if getattr(info, field, None) is not None}


def peek_datamodule(data_config: Namespace):
    """The datamodule `data_config` (class_path + init_args) describes, built but not set up."""
    cls = import_object(str(data_config["class_path"]))
    init_args = data_config.get("init_args")
    kwargs = init_args.as_dict() if isinstance(init_args, Namespace) else dict(init_args or {})
    return cls(**kwargs)


def fill_model_from_data(model_config: Namespace, datamodule) -> dict[str, int]:
    """Set the unset FACTS of `model_config.init_args` from the data; returns what was filled.
    Raises ConfigError when a pinned value contradicts the data."""
    if not callable(getattr(datamodule, "peek_info", None)):
        return {}
    init_args = model_config["init_args"]
    method = str(model_config["class_path"]).rsplit(".", 1)[-1]
    name = datamodule.peek_info().name
    filled = {}
    for argument, data_value in model_arguments(datamodule).items():
        if argument not in init_args:
            continue
        value = init_args[argument]
        if value is None:
            init_args[argument] = filled[argument] = data_value
        elif FACTS[argument][1] and int(value) != data_value:
            raise ConfigError(
                f"{method} is configured with {argument}={value}, but the data ({name}) has {data_value}; "
                f"remove {argument} from the config (it follows the data) or use the data it was written for"
            )
    return filled
