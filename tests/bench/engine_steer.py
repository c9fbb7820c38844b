"""Steering benchmarks: `steer_overhead` and `batch_gain_8`, each a ratio measured in
one run on the same model, so machine load mostly cancels out.

- steer_overhead: generate() tokens/s with one add intervention ÷ the same call with none
  (both decode the default and steered rows as one batch of 2).
- batch_gain_8: aggregate tokens/s of 8 concurrent requests (16 rows, each request with its own
  steering) through one BatchScheduler ÷ tokens/s of one request through it.

Runs on the committed demo model when present, else on a random-weight model with the demo
recipe's shape (GPT-2, 4 layers, d_model 128, vocab 4096, TopK SAE with 1536 latents).
Greedy decoding with EOS disabled, so every run decodes exactly the same number of tokens.
"""

from __future__ import annotations

import statistics
import time

import torch

from tests.bench._engine import demo_attached, one_torch_thread
from workers.engine.constants import DEMO_MODEL_DIR
from workers.engine.generation import prepare_job, submit
from workers.engine.interventions import Intervention, SteerSpec
from workers.engine.loading import AttachedSAE, LoadedModel, attach_sae
from workers.engine.scheduler import BatchScheduler, run_job

PROMPT = "The jury said that the city"
NEW_TOKENS = 48
REPEATS = 21  # pairs; the median of per-pair ratios shrugs off load spikes


def _fallback() -> tuple[LoadedModel, object, str]:
    import transformers
    from sae_lens import SAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from workers.engine.hooks import family_of

    if (DEMO_MODEL_DIR / "tokenizer.json").is_file():
        tok = transformers.AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    else:  # importing the test fixtures pins torch to 1 thread; only do it when needed
        from tests.engine.builders import build_tokenizer

        tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(tok),
        n_positions=128,
        n_embd=128,
        n_layer=4,
        n_head=4,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = transformers.GPT2LMHeadModel(cfg).eval().requires_grad_(False)
    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        family=family_of(model),
        name="random-demo-shape",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    sae = SAE.from_dict(
        TopKSAEConfig(
            d_in=128,
            d_sae=1536,
            k=24,
            dtype="float32",
            device="cpu",
            metadata=SAEMetadata(hook_name="blocks.2.hook_resid_post", prepend_bos=True),
        ).to_dict()
    )
    return lm, sae.eval(), "random weights, demo recipe shape"


def _attached() -> tuple[AttachedSAE, str]:
    if (att := demo_attached()) is not None:
        return att, "demo checkpoint"
    lm, sae, source = _fallback()
    return attach_sae(lm, sae), source


def _spec(interventions=(), seed=0) -> SteerSpec:
    return SteerSpec(tuple(interventions), max_new_tokens=NEW_TOKENS, seed=seed)


def generate(att, prompt: str, spec: SteerSpec):
    """generate()'s own code path with EOS off: every run decodes the same token count."""
    return run_job(att.lm, prepare_job(att, prompt, spec), stop_ids=())


def _tokens(result) -> int:
    return len(result.default.tokens) + len(result.steered.tokens)


def _rate(fn) -> float:
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def _paired(a, b, pairs: int) -> tuple[float, float, float]:
    """Median of b/a over back-to-back pairs (order alternating), so that a shared machine's
    changing load hits both sides alike. Returns (ratio, median a, median b) in tokens/s."""
    ra, rb = [], []
    for i in range(pairs):
        if i % 2:
            rb.append(_rate(b))
            ra.append(_rate(a))
        else:
            ra.append(_rate(a))
            rb.append(_rate(b))
    ratio = statistics.median(y / x for x, y in zip(ra, rb, strict=True))
    return ratio, statistics.median(ra), statistics.median(rb)


def _steer_overhead(att) -> tuple[float, float, float]:
    plain, steered = _spec(), _spec([Intervention(3, 8.0)])
    generate(att, PROMPT, steered)  # warm-up
    return _paired(
        lambda: _tokens(generate(att, PROMPT, plain)),
        lambda: _tokens(generate(att, PROMPT, steered)),
        REPEATS,
    )


def _batch_gain(att, n_requests: int = 8) -> tuple[float, float, float]:
    prompts = [
        PROMPT,
        "She said",
        "A quick brown fox",
        "In the morning the",
        "He was born in",
        "The committee",
        "It is not",
        "They went to the",
    ]
    specs = [_spec([Intervention(3 + i, 4.0 + i)], seed=i) for i in range(n_requests)]

    with BatchScheduler(att.lm, stop_ids=()) as scheduler:
        submit(scheduler, att, PROMPT, specs[0]).result()  # warm-up

        def run(k: int) -> int:
            handles = [
                submit(scheduler, att, prompts[i % len(prompts)], specs[i]) for i in range(k)
            ]
            return sum(_tokens(h.result()) for h in handles)

        return _paired(lambda: run(1), lambda: run(n_requests), 3)


def run() -> list[dict]:
    att, source = _attached()
    with one_torch_thread():
        overhead, plain, steered = _steer_overhead(att)
        gain, one, many = _batch_gain(att)
    note = f"{source}; 1 CPU thread"
    return [
        {
            "name": "steer_overhead",
            "value": round(overhead, 3),
            "unit": "ratio",
            "target": ">= 0.90",
            "detail": f"{steered:.0f} vs {plain:.0f} tok/s (2 rows, {NEW_TOKENS} new); {note}",
        },
        {
            "name": "batch_gain_8",
            "value": round(gain, 3),
            "unit": "ratio",
            "target": ">= 3.0",
            "detail": f"{many:.0f} vs {one:.0f} tok/s (8 requests x 2 rows vs 1); {note}",
        },
    ]


if __name__ == "__main__":
    import json
    import sys

    for row in run():
        sys.stdout.write(json.dumps(row) + "\n")
