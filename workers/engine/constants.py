"""Names decided once: dtypes, file names and where the committed demo checkpoint lives."""

from __future__ import annotations

from pathlib import Path

import torch

# Every dtype string the engine accepts (CLI, configs, the DB) maps through this one table.
DTYPE_MAP: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}

# The committed demo checkpoint (trained by workers/engine/demo/; see its README).
DEMO_DIR = Path(__file__).parent / "demo" / "checkpoint"
DEMO_MODEL_DIR = DEMO_DIR / "model"  # Hugging Face GPT-2 directory
DEMO_SAE_DIR = DEMO_DIR / "sae"  # SAELens folder
DEMO_SPEC = "demo"

# SAELens on-disk format (mirrors sae_lens.constants; named here so callers need not import it).
SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
HF_CONFIG_FILENAME = "config.json"


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """Map a dtype name ("fp32", "bfloat16", ...) or a torch.dtype onto a torch.dtype.

    Raises ValueError naming the accepted names.
    """
    if isinstance(name, torch.dtype):
        if name not in DTYPE_MAP.values():
            raise ValueError(f"unsupported dtype {name}; use one of {sorted(DTYPE_MAP)}")
        return name
    try:
        return DTYPE_MAP[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPE_MAP)}") from None
