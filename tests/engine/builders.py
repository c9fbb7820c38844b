"""Builders for the engine's tests and benchmarks: an in-memory tokenizer, a random tiny GPT-2,
random SAELens SAEs of each architecture. Nothing is downloaded; each takes overrides
(``build_tiny_gpt2(n_layer=3)``, ``build_sae(d, architecture="topk", k=8)``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import transformers
from sae_lens import (
    SAE,
    GatedSAEConfig,
    JumpReLUSAEConfig,
    StandardSAEConfig,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata

CORPUS = [
    "The cat sat on the mat. The dog ran in the park.",
    "A quick brown fox jumps over the lazy dog.",
    "She said that the weather was fine, and they went out to play.",
    "Numbers like 1, 2 and 3 are small; 1000 is larger.",
]
EOT = "<|endoftext|>"


def build_tokenizer(vocab_size: int = 320) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in memory (any text encodes; no downloads)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT
    )


def demo_tokenizer_or_tiny() -> Any:
    """The demo model's tokenizer when its checkpoint is present, else `build_tokenizer()`."""
    # Imported here: the engine's conftest instruments workers.engine modules as it imports
    # them, so this module must not import one first.
    from workers.engine.constants import DEMO_MODEL_DIR

    if (DEMO_MODEL_DIR / "tokenizer.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    return build_tokenizer()


def build_tiny_gpt2(tokenizer: Any = None, **overrides: Any) -> transformers.GPT2LMHeadModel:
    """A random-weight GPT-2 (2 layers, d_model 32) sized to the tokenizer's vocabulary."""
    tokenizer = tokenizer or build_tokenizer()
    cfg = {
        "vocab_size": len(tokenizer),
        "n_positions": 64,
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **overrides,
    }
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg)).eval()


SAE_CONFIGS = {
    "standard": StandardSAEConfig,
    "topk": TopKSAEConfig,
    "jumprelu": JumpReLUSAEConfig,
    "gated": GatedSAEConfig,
}


def build_sae(
    d_in: int,
    d_sae: int = 64,
    hook_name: str = "blocks.1.hook_resid_post",
    architecture: str = "standard",
    seed: int = 0,
    **overrides: Any,
) -> SAE:
    """A SAELens SAE with random weights (non-zero biases; JumpReLU thresholds > 0).

    ``metadata={...}`` adds SAE metadata (e.g. ``model_from_pretrained_kwargs``); other
    overrides go to the architecture's config (``k=8``, ``normalize_activations=...``).
    """
    meta = {"hook_name": hook_name, "prepend_bos": True, **overrides.pop("metadata", {})}
    cfg = SAE_CONFIGS[architecture](
        d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", **overrides
    )
    cfg.metadata = SAEMetadata(**meta)
    gen = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():  # sae-lens nags about model_from_pretrained_kwargs
        warnings.filterwarnings("ignore", message=".*model_from_pretrained_kwargs.*")
        sae = SAE.from_dict(cfg.to_dict())
    with torch.no_grad():
        for name, p in sae.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name == "W_dec":
                p.copy_(noise / d_in**0.5)
            elif name == "W_enc":
                p.copy_(sae.W_dec.T * 2.0)
            elif name == "threshold":
                p.copy_(noise.abs() * 0.05)
            else:
                p.copy_(noise * 0.1)
    return sae.eval()


# ChatML, as Qwen2's instruct models write it: each turn between <|im_start|>role and <|im_end|>.
CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_chat_tokenizer(vocab_size: int = 320) -> transformers.PreTrainedTokenizerFast:
    """`build_tokenizer` with ChatML's special tokens and chat template; `<|im_end|>` ends a
    reply (EOS)."""
    tok = build_tokenizer(vocab_size)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_chat_model(tokenizer: Any = None, **overrides: Any) -> transformers.PreTrainedModel:
    """A random-weight Qwen2 (2 layers, d_model 64) sized to the tokenizer's vocabulary."""
    tokenizer = tokenizer or build_chat_tokenizer()
    cfg = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **overrides,
    }
    torch.manual_seed(0)
    return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**cfg)).eval()


def save_tiny_chat_model(path: Any, sae_path: Any = None) -> None:
    """The tiny chat model and its tokenizer as a Hugging Face directory at `path`, and (when
    `sae_path` is given) a random SAE on its `blocks.1.hook_resid_post` saved with sae-lens."""
    tokenizer = build_chat_tokenizer()
    model = build_tiny_chat_model(tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if sae_path is not None:
        build_sae(model.config.hidden_size, d_sae=128).save_model(str(sae_path))


def save_tiny_gpt2(path: Any, **overrides: Any) -> str:
    """`build_tiny_gpt2` and its tokenizer as a Hugging Face directory at `path`."""
    tokenizer = build_tokenizer()
    build_tiny_gpt2(tokenizer, **overrides).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def damage(path: Any, how: str, **cfg: Any) -> None:
    """Spoil the file at `path` as a bad download or a wrong hand-edit would:

    - ``"truncate"``: cut off its last 64 bytes (safetensors: the header stays readable)
    - ``"random"``: replace it with 4 KB of random bytes
    - ``"delete"``: remove it
    - ``"not-json"``: replace it with text that is not JSON
    - ``"edit"``: set the JSON keys given in ``cfg`` (``damage(p, "edit", d_in=48)``)
    """
    import json
    import os
    from pathlib import Path

    path = Path(path)
    if how == "truncate":
        path.write_bytes(path.read_bytes()[:-64])
    elif how == "random":
        path.write_bytes(os.urandom(4096))
    elif how == "delete":
        path.unlink()
    elif how == "not-json":
        path.write_text('{"d_in": 32, oops')
    elif how == "edit":
        path.write_text(json.dumps({**json.loads(path.read_text()), **cfg}))
    else:
        raise ValueError(f"unknown damage {how!r}")
