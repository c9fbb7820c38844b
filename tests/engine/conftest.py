"""Shared engine fixtures: tiny random models built from transformers configs, tiny SAEs, the demo.

Nothing is downloaded. The builders behind them are in tests/engine/builders.py; fixtures hand
out fresh deep copies of session-cached objects, so a test may mutate what it gets.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from jaxtyping import install_import_hook
from sae_lens import SAE

ENGINE = "workers.engine"
# Engine modules imported without the checks, each with the reason.
UNCHECKED = {
    # Specs take loose input (a list for a tuple, say) and validate it themselves, raising
    # SpecError with the field's name; a type check at the call would pre-empt that.
    f"{ENGINE}.specs": "validates its own input",
}
# beartype, as an expression jaxtyping evaluates after `import beartype`. PEP 484's numeric
# tower: an int is a valid float (timeout=60, strength=2). `Self` is read as Any: beartype
# resolves it only in classes it decorates whole, and the hook decorates methods one by one.
TYPECHECKER = (
    "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True, hint_overrides="
    "beartype.FrozenDict({beartype.typing.Self: beartype.typing.Any})))"
)


def _import_engine_with_runtime_checks() -> None:
    """Import every engine module under jaxtyping's import hook with beartype, so that each
    annotated function checks its argument and return types and shapes on every call.

    The hook instruments only modules imported while it is installed, hence all of them now,
    before a test imports one lazily. It is installed here rather than with jaxtyping's
    pytest option, which would apply to every test directory; engine modules that other test
    directories import later are these same instrumented ones.
    """
    root = importlib.import_module(ENGINE)
    names = [
        f"{ENGINE}.{m.name}" for m in pkgutil.iter_modules(root.__path__) if m.name != "__main__"
    ]  # __main__ runs the CLI on import
    early = sorted(m for m in sys.modules if m.startswith(f"{ENGINE}."))
    if early:  # imported before this conftest (e.g. by another directory's): unchecked
        warnings.warn(f"imported before the jaxtyping hook, not checked: {early}", stacklevel=1)
    with install_import_hook([n for n in names if n not in UNCHECKED], TYPECHECKER):
        for name in names:
            module = importlib.import_module(name)
            for sub in pkgutil.walk_packages(getattr(module, "__path__", []), f"{name}."):
                importlib.import_module(sub.name)


_import_engine_with_runtime_checks()

from tests.engine.builders import build_sae, build_tiny_gpt2, demo_tokenizer_or_tiny
from workers.engine.constants import DEMO_MODEL_DIR, DEMO_SAE_DIR
from workers.engine.loading import (
    LoadedModel,
    attach_sae,
    load_model,
    load_sae,
)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def reproducibility() -> None:
    """Seed every RNG before each test."""
    torch.manual_seed(42)
    random.seed(42)
    np.random.seed(42)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 + tokenizer saved as a Hugging Face directory (loaded by load_model)."""
    path = tmp_path_factory.mktemp("tiny_gpt2")
    tokenizer = demo_tokenizer_or_tiny()
    build_tiny_gpt2(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def _tiny_lm_cached(tiny_model_dir: Path) -> LoadedModel:
    return load_model(str(tiny_model_dir), device="cpu", dtype="fp32")


@pytest.fixture
def tiny_lm(_tiny_lm_cached: LoadedModel) -> LoadedModel:
    """A LoadedModel around a random 2-layer GPT-2 (fresh deep copy per test)."""
    return copy.deepcopy(_tiny_lm_cached)


@pytest.fixture
def tiny_sae(tiny_lm: LoadedModel) -> SAE:
    """A random standard SAE on ``blocks.1.hook_resid_post`` of ``tiny_lm`` (d_sae 64)."""
    return build_sae(tiny_lm.d_model)


@pytest.fixture
def tiny_att(tiny_lm: LoadedModel, tiny_sae: SAE):
    """``tiny_sae`` attached to ``tiny_lm``."""
    return attach_sae(tiny_lm, tiny_sae)


def _demo_model_present() -> bool:
    return (DEMO_MODEL_DIR / "model.safetensors").is_file()


def _demo_sae_present() -> bool:
    return (DEMO_SAE_DIR / "sae_weights.safetensors").is_file()


@pytest.fixture(scope="session")
def _demo_lm_cached() -> LoadedModel:
    if not _demo_model_present():
        pytest.skip("demo model checkpoint not present")
    return load_model("demo", device="cpu", dtype="fp32")


@pytest.fixture
def demo_lm(_demo_lm_cached: LoadedModel) -> LoadedModel:
    """The committed demo model (skips when the checkpoint is absent)."""
    return copy.deepcopy(_demo_lm_cached)


@pytest.fixture
def demo_sae() -> SAE:
    """The committed demo SAE (skips when the checkpoint is absent)."""
    if not _demo_sae_present():
        pytest.skip("demo SAE checkpoint not present")
    return load_sae("demo", device="cpu")


@pytest.fixture
def demo_att(demo_lm: LoadedModel, demo_sae: SAE):
    return attach_sae(demo_lm, demo_sae)
