"""`index_overhead_engine`: the engine's indexing pass vs a bare forward to the hook + encode.

Ours: ``index_corpus(att, documents, tokens=N)`` — tokenizing the documents into 128-token
windows, the hooked forward stopped at the SAE hook, ``sae.encode`` and every statistic
(counts, sums, max, histogram, top-K, quantile candidates) and the final merge. Bare: the
same windows, already tokenized and batched, through a copy of the model cut after the
hook's block (no hooks, no final norm) and ``sae.encode``. Runs alternate and the median of
each is used, since this machine is shared. Uses the demo model/SAE when the checkpoint is
present, else a random model of the demo's shape (3 layers, d_model 96, TopK SAE 1536 x k=20
on blocks.1); the demo corpus when installed, else synthetic text.
"""

from __future__ import annotations

import random
import statistics
import time

import torch

from tests.bench._engine import demo_attached, hook_baseline_model, one_torch_thread
from workers.engine.hooks import family_of
from workers.engine.indexing import index_corpus, make_windows
from workers.engine.loading import AttachedSAE, LoadedModel, attach_sae

N_TOKENS = 50_000
CONTEXT = 128
BATCH = 32
REPEATS = 5
SYNTHETIC_WORDS = (
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "cat",
    "sat",
    "mat",
    "ran",
)


def _setup() -> tuple[AttachedSAE, str]:
    if (att := demo_attached()) is not None:
        return att, "demo"
    from tests.engine.builders import build_sae, build_tiny_gpt2, demo_tokenizer_or_tiny

    tokenizer = demo_tokenizer_or_tiny()
    model = build_tiny_gpt2(tokenizer, n_layer=3, n_embd=96, n_positions=CONTEXT)
    lm = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family_of(model),
        name="tiny",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    sae = build_sae(96, d_sae=1536, hook_name="blocks.1.hook_resid_post", architecture="topk", k=20)
    return attach_sae(lm, sae), "random-demo-shape"


def _documents() -> tuple[list[str], str]:
    from workers.engine.demo.corpus import CorpusNotInstalledError, load_documents

    try:
        return [d.text for d in load_documents()], "demo-corpus"
    except CorpusNotInstalledError:  # synthetic words are enough for a throughput ratio
        rng = random.Random(0)
        return [
            " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(rng.randint(50, 400)))
            for _ in range(600)
        ], "synthetic"


def run() -> list[dict]:
    with one_torch_thread():
        return _measure()


def _measure() -> list[dict]:
    torch.manual_seed(0)
    att, which = _setup()
    if att.hook.kind != "resid_post":
        raise RuntimeError(f"bench assumes a resid_post SAE, got {att.hook_name}")
    docs, corpus = _documents()
    windows = make_windows(att.lm, docs, context=CONTEXT, tokens=N_TOKENS)
    cut = hook_baseline_model(att.lm, att.hook.layer)
    batches = [
        windows.batch(
            list(range(b, min(b + BATCH, len(windows)))), att.lm.pad_token_id, att.lm.device
        )
        for b in range(0, len(windows), BATCH)
    ]

    def ours() -> None:
        index_corpus(att, docs, context=CONTEXT, tokens=N_TOKENS, batch_size=BATCH)

    def bare() -> None:
        with torch.inference_mode():
            for ids, real in batches:
                mask = None if bool(real.all()) else real.long()
                hidden = cut(
                    input_ids=ids, attention_mask=mask, use_cache=False
                ).last_hidden_state  # [b, pos, d]
                att.sae.encode(hidden)

    bare()  # warm up
    t_ours, t_bare = [], []
    for _ in range(REPEATS):
        for fn, acc in ((ours, t_ours), (bare, t_bare)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    ratio = statistics.median(t_ours) / statistics.median(t_bare)
    meta = {"model": which, "corpus": corpus, "tokens": windows.n_tokens}
    return [
        {
            "name": "index_overhead_engine",
            "value": round(ratio, 3),
            "unit": "ratio",
            "target": "<= 1.30",
            **meta,
        },
        {
            "name": "index_engine_tokens_per_s",
            "value": round(windows.n_tokens / statistics.median(t_ours), 1),
            "unit": "tokens/s",
            "target": None,
            **meta,
        },
    ]


if __name__ == "__main__":
    import json

    for row in run():
        print(json.dumps(row))
