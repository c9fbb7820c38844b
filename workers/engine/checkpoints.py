"""Checks of the files of a local model or SAE folder, made before they are loaded.

A truncated or random safetensors file, a config that is not JSON, weights whose shapes
disagree with the config, weights that are missing: each raises :class:`CheckpointError`, one
line naming the file and what is wrong, instead of whatever safetensors, sae-lens or
transformers would raise deep inside (a state-dict report, a Rust error, a 30-line traceback).
Only headers are read: a safetensors header gives every tensor's name and shape without its
data, so the checks cost milliseconds even for a sharded multi-GB model.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from .constants import HF_CONFIG_FILENAME, SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

# Hugging Face weight files, in transformers' order of preference.
HF_SAFETENSORS = "model.safetensors"
HF_SAFETENSORS_INDEX = "model.safetensors.index.json"
HF_PYTORCH = ("pytorch_model.bin", "pytorch_model.bin.index.json")
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# The tensors each SAE architecture needs, and every tensor's shape from the config:
# d_in, d_sae, and d_out (a transcoder's output width, d_in for an SAE).
SAE_TENSORS: dict[str, tuple[str, ...]] = {
    "standard": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "topk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "abstopk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "jumprelu": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "gated": ("W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag"),
}
SAE_SHAPES = {
    "W_enc": ("d_in", "d_sae"),
    "W_dec": ("d_sae", "d_out"),
    "b_enc": ("d_sae",),
    "b_dec": ("d_out",),
    "threshold": ("d_sae",),
    "b_gate": ("d_sae",),
    "b_mag": ("d_sae",),
    "r_mag": ("d_sae",),
}
MAX_MESSAGE = 400  # characters of a library's own message kept in ours


class CheckpointError(ValueError):
    """A model or SAE file that cannot be read or does not fit its config. The message is one
    line and names the file."""


def one_line(exc: BaseException) -> str:
    """`exc`'s message on one line, cut to MAX_MESSAGE characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`. Raises CheckpointError when the file is missing, unreadable,
    not JSON, or holds something other than an object."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not valid JSON: it is not UTF-8 text") from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read: {e.strerror or one_line(e)}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not a {type(data).__name__}")
    return data


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the safetensors file `path`, from its header alone.

    Raises CheckpointError when the file is missing, truncated or not safetensors (the header
    is checked to cover the whole file, so a cut-off tail is caught too).
    """
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {one_line(e)}"
        ) from None


def _dimension(cfg: dict[str, Any], key: str, cfg_path: Path) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        what = "has no " + key if value is None else f"has {key}={value!r}"
        raise CheckpointError(f"{cfg_path} {what}; it must be a positive integer")
    return value


def check_sae_folder(folder: Path, *, architectures: Collection[str] = ()) -> None:
    """Check a SAELens folder before sae-lens loads it: cfg.json is a JSON object with
    positive d_in and d_sae, sae_weights.safetensors is readable, holds every tensor its
    architecture needs, and each tensor's shape agrees with cfg.json (W_enc [d_in, d_sae],
    W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in], threshold [d_sae] for JumpReLU, ...).
    An architecture outside SAE_TENSORS gets the file checks only; one outside
    `architectures` (sae-lens' registry, when given) is refused.

    Raises CheckpointError naming the file and what is wrong.
    """
    cfg_path, weights = folder / SAE_CFG_FILENAME, folder / SAE_WEIGHTS_FILENAME
    cfg = read_json(cfg_path)
    dims = {"d_in": _dimension(cfg, "d_in", cfg_path), "d_sae": _dimension(cfg, "d_sae", cfg_path)}
    dims["d_out"] = _dimension(cfg, "d_out", cfg_path) if "d_out" in cfg else dims["d_in"]
    shapes = tensor_shapes(weights)
    architecture = str(cfg.get("architecture") or "standard")
    if architectures and architecture not in architectures:
        raise CheckpointError(
            f"{cfg_path} has architecture={architecture!r}; sae-lens knows "
            f"{', '.join(sorted(architectures))}"
        )
    if architecture not in SAE_TENSORS:
        return
    needed = SAE_TENSORS[architecture]
    missing = [name for name in needed if name not in shapes]
    if missing:
        raise CheckpointError(
            f"{weights} has no {', '.join(missing)}; a {architecture} SAE needs {', '.join(needed)}"
        )
    foreign = [name for name in SAE_SHAPES if name in shapes and name not in needed]
    if foreign:
        raise CheckpointError(
            f"{weights} holds {', '.join(foreign)}, which a {architecture} SAE does not have: "
            f"is the architecture in {cfg_path.name} right?"
        )
    for name, axes in SAE_SHAPES.items():
        expected = tuple(dims[axis] for axis in axes)
        if name in shapes and shapes[name] != expected:
            said = ", ".join(f"{axis}={dims[axis]}" for axis in dict.fromkeys(axes))
            raise CheckpointError(
                f"{weights}: {name} has shape {list(shapes[name])}, but {cfg_path.name} says "
                f"{said}, so it must be {list(expected)} ([{', '.join(axes)}])"
            )


def check_model_folder(folder: Path) -> None:
    """Check a Hugging Face model folder before transformers loads it: config.json and the
    tokenizer's JSON files parse, weights exist, and every safetensors file (each shard of a
    sharded checkpoint) is readable. Shapes are checked against the config after loading
    (:func:`check_loading_info`), which knows each architecture's parameters.

    Raises CheckpointError naming the file and what is wrong.
    """
    read_json(folder / HF_CONFIG_FILENAME)
    for name in HF_TOKENIZER_FILES:
        if (folder / name).exists():
            read_json(folder / name)
    index = folder / HF_SAFETENSORS_INDEX
    if index.exists():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index} has no weight_map naming the shards")
        for shard in sorted(set(map(str, weight_map.values()))):
            tensor_shapes(folder / shard)
    elif (folder / HF_SAFETENSORS).exists():
        tensor_shapes(folder / HF_SAFETENSORS)
    elif not any((folder / name).is_file() for name in HF_PYTORCH):
        raise CheckpointError(
            f"{folder} has no model weights ({HF_SAFETENSORS}, {HF_SAFETENSORS_INDEX} "
            f"or {HF_PYTORCH[0]})"
        )


def _first(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_loading_info(where: str, info: dict[str, Any]) -> None:
    """Refuse a model whose weights did not fill it: transformers' `output_loading_info` (with
    `ignore_mismatched_sizes=True`, so it reports rather than raises) lists parameters whose
    shape differs from the config's, and parameters the weights lack (left random).

    Raises CheckpointError naming `where` and the first such parameters.
    """
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, in_file, by_config = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise CheckpointError(
            f"{where}: weight {key} has shape {list(in_file)} but {HF_CONFIG_FILENAME} makes "
            f"it {list(by_config)}{more}"
        )
    missing = info.get("missing_keys") or ()
    if missing:
        raise CheckpointError(
            f"{where}: the weights lack {len(missing)} parameter(s) that {HF_CONFIG_FILENAME} "
            f"needs: {_first(missing)}"
        )
