"""`activation_efficiency`: our activations path vs a bare forward to the hook + SAE encode.

Ours: ``feature_activations(att, texts, None)`` — tokenizing and validating, right-padding,
the hooked forward stopped at the SAE hook by an exception, preprocessing, ``sae.encode``, and
per-text results on the CPU with token strings. Bare: the same tokenized batches through a
copy of the model cut after the hook's block (no hooks, no final norm) and ``sae.encode``.
Both see the same texts and batch size, on one CPU thread; runs alternate and the median of each
is used, since this machine is shared. Uses the demo model and SAE, or a tiny random GPT-2 when
absent.
"""

from __future__ import annotations

import random
import statistics
import time

import torch

from tests.bench._engine import demo_attached, hook_baseline_model, one_torch_thread
from workers.engine.activations import feature_activations
from workers.engine.loading import AttachedSAE, LoadedModel, attach_sae

N_TEXTS = 256
BATCH = 16
REPEATS = 7
_WORD_TEXT = (
    "the of and to a in that is was he for it with as his on be at by had not are but "
    "from or have an they which one you were her all she there would their we him been "
    "has when who will more no if out so said what up its about into than them can only "
    "other new some could time these two may then do first any my now such like our over "
    "man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good "
    "very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against "
    "go came right used take three city jury county election evidence"
)
WORDS = _WORD_TEXT.split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 45))).capitalize() + "."
        for _ in range(n)
    ]


def _setup() -> tuple[AttachedSAE, str]:
    if (att := demo_attached()) is not None:
        return att, "demo"
    from tests.engine.builders import build_sae, build_tiny_gpt2, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_tiny_gpt2(tokenizer, n_layer=4, n_embd=128, n_positions=256)
    from workers.engine.hooks import family_of

    lm = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family_of(model),
        name="tiny",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    return attach_sae(lm, build_sae(128, d_sae=2048, hook_name="blocks.2.hook_resid_post")), "tiny"


def run() -> list[dict]:
    with one_torch_thread():
        return _measure()


def _measure() -> list[dict]:
    torch.manual_seed(0)
    att, which = _setup()
    if att.hook.kind != "resid_post":
        raise RuntimeError(f"bench assumes a resid_post SAE, got {att.hook_name}")
    lm, texts = att.lm, _texts(N_TEXTS)
    cut = hook_baseline_model(lm, att.hook.layer)
    n_tokens = sum(len(lm.encode(t)) for t in texts)

    def ours() -> None:
        feature_activations(att, texts, None, batch_size=BATCH)

    def bare() -> None:
        with torch.no_grad():
            for start in range(0, len(texts), BATCH):
                enc = lm.tokenizer(
                    [lm.tokenizer.bos_token + t for t in texts[start : start + BATCH]],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                hidden = cut(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    use_cache=False,
                ).last_hidden_state  # [b, pos, d]
                att.sae.encode(hidden)

    ours(), bare()  # warm up
    t_ours, t_bare = [], []
    for _ in range(REPEATS):
        for fn, acc in ((ours, t_ours), (bare, t_bare)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    ours_tps = n_tokens / statistics.median(t_ours)
    bare_tps = n_tokens / statistics.median(t_bare)
    return [
        {
            "name": "activation_efficiency",
            "value": round(ours_tps / bare_tps, 3),
            "unit": "ratio",
            "target": ">= 0.85",
            "model": which,
        },
        {
            "name": "activations_tokens_per_s",
            "value": round(ours_tps, 1),
            "unit": "tokens/s",
            "target": None,
            "model": which,
        },
        {
            "name": "bare_hook_forward_tokens_per_s",
            "value": round(bare_tps, 1),
            "unit": "tokens/s",
            "target": None,
            "model": which,
        },
    ]
