"""Real-shape benchmark assets, built locally in minutes and cached: nothing is downloaded.

    >>> assets = build_scale_assets()              # var/bench/scale/full/{model,sae}
    >>> assets.model_dir, assets.sae_dir, assets.hook_name
    python -m tests.bench._scale_assets [--mini] [--force] [--root DIR]

- a GPT-2-small-shaped causal LM with random weights (12 layers, d_model 768, 12 heads,
  n_ctx 1024, vocab 50,257), saved with ``save_pretrained`` (safetensors);
- its own byte-level BPE tokenizer of exactly 50,257 tokens, trained with ``tokenizers`` on
  the demo corpus (the repository's own text files where the npm corpora are not installed,
  as on a bare GPU machine). When the corpus yields fewer merges, reserved special tokens
  ``<|reserved_N|>`` fill the vocabulary: text never contains them, so it round-trips;
- a JumpReLU SAE of 24,576 latents on ``blocks.8.hook_resid_pre``, written through
  sae-lens's own ``JumpReLUSAE.save_model`` (its cfg.json and safetensors). Decoder rows are
  random unit vectors, the encoder their transpose, ``b_dec`` the mean activation. Each
  latent j gets a target density d_j, spread log-uniformly over [1e-5, 3e-2] (mean 3.75e-3,
  so L0 ~ 92 at 24,576 latents), and is calibrated on a few thousand corpus tokens at the
  hook: ``b_enc_j`` centres its pre-activation and ``threshold_j = std_j * z(1 - d_j)``, the
  Gaussian tail quantile that leaves d_j of the tokens above it.

``mini=True`` (or ``BENCH_SCALE_MINI=1``) is the same recipe at a tiny shape (2 layers,
d_model 64, vocab 1,000, 512 latents on ``blocks.1.hook_resid_pre``) for tests.

A marker file (``assets.json``) records the recipe's hash: a changed recipe (or
``force=True``) rebuilds; otherwise the cached assets are returned at once. A build writes to
a temporary folder and renames it into place, so an interrupted build leaves nothing half
done.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / "var" / "bench" / "scale"
MARKER = "assets.json"
EOT = "<|endoftext|>"
# Bump when the recipe's code changes in a way the fields below do not show.
RECIPE_VERSION = 2
# Text files of the repository: the corpus where the npm demo corpora are missing.
REPO_TEXT_SUFFIXES = (".md", ".py", ".html", ".ts", ".txt")
REPO_TEXT_DIRS = ("docs", "explorer", "workers", "tests", "deploy", "frontend/src")


@dataclass(frozen=True)
class ScaleRecipe:
    """Every knob of the assets; its hash names a build."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_ctx: int
    vocab_size: int
    sae_layer: int  # the SAE reads blocks.{sae_layer}.hook_resid_pre
    d_sae: int
    density_min: float = 1e-5
    density_max: float = 3e-2
    calibration_tokens: int = 4096
    calibration_context: int = 128
    tokenizer_docs: int | None = None  # documents the tokenizer is trained on (None: all)
    seed: int = 0

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.sae_layer}.hook_resid_pre"

    def digest(self, corpus: str) -> str:
        payload = json.dumps(
            {"recipe": asdict(self), "corpus": corpus, "version": RECIPE_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


FULL = ScaleRecipe(
    name="full", n_layer=12, n_embd=768, n_head=12, n_ctx=1024, vocab_size=50_257,
    sae_layer=8, d_sae=24_576,
)  # fmt: skip
MINI = ScaleRecipe(
    name="mini", n_layer=2, n_embd=64, n_head=2, n_ctx=256, vocab_size=1_000,
    sae_layer=1, d_sae=512, calibration_tokens=4096, tokenizer_docs=150,
)  # fmt: skip


@dataclass
class ScaleAssets:
    """Where a build lies and what it is. ``built``: this call built it (else it was cached)."""

    root: Path
    recipe: ScaleRecipe
    corpus: str  # "demo" or "repo-text"
    digest: str
    built: bool
    build_s: float  # the build's duration (of the cached build when built is False)
    phases_s: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def sae_dir(self) -> Path:
        return self.root / "sae"

    @property
    def hook_name(self) -> str:
        return self.recipe.hook_name

    @property
    def target_densities_path(self) -> Path:
        return self.root / "target_densities.npy"


def mini_requested() -> bool:
    return os.environ.get("BENCH_SCALE_MINI", "").strip() not in ("", "0", "false", "no")


def corpus_source() -> str:
    """ "demo" when the npm demo corpora are installed, else "repo-text"."""
    from workers.engine.demo.corpus import BROWN_DIR, NLP_DIR

    return "demo" if BROWN_DIR.is_dir() and NLP_DIR.is_dir() else "repo-text"


def corpus_documents(source: str | None = None) -> list[str]:
    """The documents of ``source`` (default :func:`corpus_source`), in a fixed order."""
    if (source or corpus_source()) == "demo":
        from workers.engine.demo.corpus import load_documents

        docs = [d.text for d in load_documents()]
    else:
        docs = list(_repo_text())
    if not docs:
        raise RuntimeError("no corpus text: neither the demo corpus nor the repository's files")
    return docs


def _repo_text() -> Iterator[str]:
    for top in REPO_TEXT_DIRS:
        base = REPO / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix in REPO_TEXT_SUFFIXES and path.is_file():
                if "node_modules" in path.parts or "checkpoint" in path.parts:
                    continue
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                if text:
                    yield text


def build_scale_assets(
    root: Path | str | None = None, *, mini: bool | None = None, force: bool = False
) -> ScaleAssets:
    """Build (or find cached) the assets under ``root/<full|mini>``; see the module doc.

    ``mini`` None reads ``BENCH_SCALE_MINI``. Raises RuntimeError when no corpus text exists.
    """
    mini = mini_requested() if mini is None else mini
    recipe = MINI if mini else FULL
    out = Path(root or DEFAULT_ROOT) / recipe.name
    corpus = corpus_source()
    digest = recipe.digest(corpus)
    marker = out / MARKER
    if not force and marker.is_file():
        try:
            meta = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("digest") == digest:
            return ScaleAssets(
                root=out,
                recipe=recipe,
                corpus=corpus,
                digest=digest,
                built=False,
                build_s=float(meta.get("build_s", 0.0)),
                phases_s=meta.get("phases_s", {}),
                facts=meta.get("facts", {}),
            )
    tmp = out.parent / f".{recipe.name}-building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        phases, facts = _build(recipe, corpus_documents(corpus), tmp)
        build_s = time.perf_counter() - t0
        meta = {
            "digest": digest,
            "recipe": asdict(recipe),
            "corpus": corpus,
            "version": RECIPE_VERSION,
            "build_s": round(build_s, 2),
            "phases_s": phases,
            "facts": facts,
        }
        (tmp / MARKER).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ScaleAssets(
        root=out,
        recipe=recipe,
        corpus=corpus,
        digest=digest,
        built=True,
        build_s=build_s,
        phases_s=phases,
        facts=facts,
    )


def _build(r: ScaleRecipe, docs: list[str], out: Path) -> tuple[dict[str, float], dict]:
    import torch

    phases: dict[str, float] = {}
    t = time.perf_counter()
    tok, fill = train_tokenizer(docs[: r.tokenizer_docs] if r.tokenizer_docs else docs, r)
    tok.save_pretrained(out / "model")
    phases["tokenizer_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    torch.manual_seed(r.seed)
    model = build_model(r, tok)
    model.save_pretrained(out / "model")  # safetensors
    phases["model_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    sae, densities = build_sae(r, model, tok, docs)
    sae.save_model(out / "sae")
    import numpy as np

    np.save(out / "target_densities.npy", densities.numpy())
    phases["sae_s"] = round(time.perf_counter() - t, 2)
    facts = {
        "vocab_filled": fill,
        "expected_l0": round(float(densities.sum()), 2),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    return phases, facts


def train_tokenizer(docs: list[str], r: ScaleRecipe):
    """Byte-level BPE of exactly ``r.vocab_size`` tokens (<|endoftext|> as BOS/EOS/UNK/PAD);
    returns (GPT2TokenizerFast, reserved tokens added to fill the vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=r.vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    fill = r.vocab_size - tok.get_vocab_size()
    if fill > 0:
        # Special tokens are matched before BPE; text never contains these names.
        tok.add_special_tokens([f"<|reserved_{i}|>" for i in range(fill)])
    hf_tok = GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        pad_token=EOT,
        clean_up_tokenization_spaces=False,  # decode(encode(text)) == text
    )
    hf_tok.model_max_length = r.n_ctx
    if len(hf_tok) != r.vocab_size:
        raise RuntimeError(f"tokenizer has {len(hf_tok)} tokens, expected {r.vocab_size}")
    return hf_tok, max(fill, 0)


def build_model(r: ScaleRecipe, tok):
    """A GPT-2 of the recipe's shape with random (GPT-2 initialisation) weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    eot = tok.convert_tokens_to_ids(EOT)
    cfg = GPT2Config(
        vocab_size=r.vocab_size,
        n_positions=r.n_ctx,
        n_embd=r.n_embd,
        n_layer=r.n_layer,
        n_head=r.n_head,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(cfg).eval()


def target_densities(r: ScaleRecipe):
    """d_j log-uniform over [density_min, density_max]: evenly spaced in log, then shuffled
    (seeded), so the mean — hence L0 — is the same on every build."""
    import torch

    gen = torch.Generator().manual_seed(r.seed + 1)
    lo, hi = math.log(r.density_min), math.log(r.density_max)
    logs = lo + (hi - lo) * (torch.arange(r.d_sae, dtype=torch.float64) + 0.5) / r.d_sae
    return logs.exp()[torch.randperm(r.d_sae, generator=gen)]  # [d_sae]


def calibration_activations(r: ScaleRecipe, model, tok, docs: list[str]):
    """Activations at the SAE's hook over ``r.calibration_tokens`` corpus tokens, BOS
    excluded, cut into windows as the indexer cuts them; [n, d_model] float32."""
    import torch

    from workers.engine.hooks import family_of, run_to_hook
    from workers.engine.indexing import make_windows
    from workers.engine.loading import LoadedModel

    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        family=family_of(model),
        name=r.name,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    context = min(r.calibration_context, r.n_ctx)
    windows = make_windows(lm, docs, context=context, tokens=r.calibration_tokens + 64)
    rows = []
    with torch.inference_mode():
        for b in range(0, len(windows), 16):
            ids, real = windows.batch(
                list(range(b, min(b + 16, len(windows)))), lm.pad_token_id, lm.device
            )
            acts = run_to_hook(lm, ids, real.long(), r.hook_name)  # [b, pos, d]
            real[:, 0] = False  # BOS is no statistic
            rows.append(acts[real])
    return torch.cat(rows)[: r.calibration_tokens].float()  # [n, d]


def build_sae(r: ScaleRecipe, model, tok, docs: list[str]):
    """The JumpReLU SAE (sae-lens's class), calibrated to the target densities; returns
    (sae, densities [d_sae])."""
    import torch
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    d = r.n_embd
    x = calibration_activations(r, model, tok, docs)  # [n, d]
    gen = torch.Generator().manual_seed(r.seed + 2)
    w_dec = torch.randn(r.d_sae, d, generator=gen)  # [d_sae, d]
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    b_dec = x.mean(0)  # [d]
    # Pre-activation statistics per latent, in chunks: [n, d_sae] at full shape is 400 MB.
    total = torch.zeros(r.d_sae, dtype=torch.float64)
    total_sq = torch.zeros(r.d_sae, dtype=torch.float64)
    for chunk in (x - b_dec).split(1024):
        pre = (chunk @ w_dec.T).double()  # [chunk, d_sae]
        total += pre.sum(0)
        total_sq += (pre * pre).sum(0)
    n = x.shape[0]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(1e-12).sqrt()
    densities = target_densities(r)
    z = torch.special.ndtri(1.0 - densities)  # Gaussian upper-tail quantile, > 0
    meta = SAEMetadata(
        model_name=f"scale-{r.name}",
        hook_name=r.hook_name,
        hook_head_index=None,
        prepend_bos=True,
        context_size=r.calibration_context,
        dataset_path="bench:scale-calibration",
        model_class_name="GPT2LMHeadModel",
    )
    cfg = JumpReLUSAEConfig(
        d_in=d,
        d_sae=r.d_sae,
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=True,
        normalize_activations="none",
        metadata=meta,
    )
    sae = JumpReLUSAE(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T)
        sae.b_dec.copy_(b_dec)
        sae.b_enc.copy_((-mean).float())
        sae.threshold.copy_((std * z).float())
    return sae, densities


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mini", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--root", type=Path)
    a = p.parse_args(argv)
    assets = build_scale_assets(a.root, mini=a.mini or None, force=a.force)
    sys.stdout.write(
        json.dumps(
            {
                "root": str(assets.root),
                "corpus": assets.corpus,
                "digest": assets.digest,
                "built": assets.built,
                "build_s": round(assets.build_s, 2),
                "phases_s": assets.phases_s,
                "facts": assets.facts,
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
