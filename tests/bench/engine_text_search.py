"""`text_search_gain_3`: the top features of a text in three SAEs of one model, from one
forward pass (``activations_per_sae``, what a `text:` search over a model runs) vs one
``feature_activations`` per SAE (three passes, each stopped at its SAE's hook).

The demo model with the demo SAE (layer 1) and two random SAEs of the same width on layers 0
and 2; one search-sized text at a time, on one CPU thread; the two ways alternate and the
median of each is used, since this machine is shared. One pass saves the shallower SAEs' passes
and the per-call work (tokenizing, checking) of all but one.
"""

from __future__ import annotations

import statistics
import time

import torch

from tests.bench._engine import demo_attached, one_torch_thread
from tests.bench.engine_activations import _texts
from tests.engine.builders import build_sae
from workers.engine.activations import activations_per_sae, feature_activations
from workers.engine.loading import attach_sae

N_TEXTS = 64
REPEATS = 7


def run() -> list[dict]:
    with one_torch_thread():
        return _measure()


def _measure() -> list[dict]:
    torch.manual_seed(0)
    demo = demo_attached()
    if demo is None:
        raise RuntimeError("the text search bench needs the demo checkpoint")
    lm = demo.lm
    atts = [
        attach_sae(lm, build_sae(lm.d_model, d_sae=demo.d_sae, hook_name=hook, seed=i))
        for i, hook in enumerate(("blocks.0.hook_resid_post", "blocks.2.hook_resid_post"))
    ]
    atts.insert(1, demo)
    texts = _texts(N_TEXTS, seed=1)

    def one_pass() -> None:
        for text in texts:
            for row in activations_per_sae(atts, text):
                row.values.max(dim=0)

    def per_sae() -> None:
        for text in texts:
            for att in atts:
                (row,) = feature_activations(att, text, None)
                row.values.max(dim=0)

    one_pass(), per_sae()  # warm up
    t_one, t_each = [], []
    for _ in range(REPEATS):
        for fn, acc in ((one_pass, t_one), (per_sae, t_each)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    one, each = statistics.median(t_one), statistics.median(t_each)
    return [
        {
            "name": "text_search_gain_3",
            "value": round(each / one, 3),
            "unit": "ratio",
            "target": ">= 1.0",
        },
        {
            "name": "text_search_ms_per_text_3_saes",
            "value": round(1000 * one / N_TEXTS, 2),
            "unit": "ms",
            "target": None,
        },
    ]
