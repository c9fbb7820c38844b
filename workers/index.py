"""Tasks for the `index` queue: one corpus shard, the merge that stores a run, the feature map.

Thin interfaces (STYLE.md workers §1-§5): ids in, rows claimed and written through
explorer.saes.indexing, the work done by plain functions below that call the engine. The
engine's torch modules are imported inside function bodies only (see workers/celery.py).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from explorer.core.exceptions import ApplicationError
from explorer.core.tasks import INDEX_QUEUE
from explorer.saes import evaluations
from explorer.saes import indexing as svc
from explorer.saes import selectors as sae_selectors
from explorer.saes.example_copy import ExampleArrays, WindowArrays
from explorer.saes.indexing import FLOAT16_MAX, FeatureRow
from explorer.saes.selectors import WEIGHT_FACT_COLUMNS
from explorer.search.services import embeddings_backlog_mark, embeddings_schedule
from workers.celery import app, time_limits
from workers.engine.corpus import CorpusError, iter_documents, parse_corpus_spec
from workers.engine.explain import FeatureEvidence, at_document_start, labels
from workers.resident import attached_for
from workers.showcases import compute_showcases

if TYPE_CHECKING:
    from explorer.saes.models import SAE, IndexRun, IndexShard
    from workers.engine.candidates import CandidateValues
    from workers.engine.feature_stats import FeatureStats
    from workers.engine.indexing import ExampleChunk, Windows
    from workers.engine.loading import AttachedSAE

log = logging.getLogger(__name__)

MAX_SHARD_RETRIES = 2
PROGRESS_EVERY_S = 1.0
CANCEL_CHECK_EVERY_S = 2.0
EXAMPLE_CHUNK = 32768  # examples per stored chunk (~1 MB of arrays each at L0 ~100)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_windows_cache: dict[tuple, Windows] = {}


def _windows(att: AttachedSAE, run: IndexRun) -> Windows:
    """The run's corpus cut into windows; kept for the next task of the same run (the merge
    step, a second shard, a re-index of the same corpus) as tokenizing costs seconds."""
    from workers.engine.indexing import make_windows

    o = run.options
    spec = parse_corpus_spec(run.corpus)
    files = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in spec.paths)
    key = (att.lm.name, run.corpus, files, run.tokens, o["context"], o["prepend_bos"])
    if key not in _windows_cache:
        _windows_cache.clear()  # one corpus at a time
        _windows_cache[key] = make_windows(
            att.lm,
            iter_documents(spec),
            context=o["context"],
            tokens=run.tokens,
            prepend_bos=o["prepend_bos"],
        )
    return _windows_cache[key]


# -- one shard --------------------------------------------------------------------------------


def compute_shard(shard: IndexShard) -> bytes:
    """Stream one shard of the run's corpus; return its mergeable result as bytes.

    Raises the engine's ValueError/CorpusError for bad input, IndexingCancelled when the run
    was cancelled or failed elsewhere.
    """
    from workers.engine.candidates import shard_result_to_bytes
    from workers.engine.indexing import Shard, candidate_values, index_shard

    run = shard.run
    o = run.options
    att = attached_for(run.sae)
    windows = _windows(att, run)
    last = {"progress": 0.0, "cancel": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last["progress"] >= PROGRESS_EVERY_S or done == total:
            last["progress"] = now
            svc.shard_progress(shard=shard, done=done, total=total)

    def cancel() -> bool:
        now = time.monotonic()
        if now - last["cancel"] < CANCEL_CHECK_EVERY_S:
            return False
        last["cancel"] = now
        return svc.run_is_stopped(run.pk)

    acc = index_shard(
        att,
        windows,
        batch_size=o["batch_size"],
        top_k=o["top"],
        n_quantiles=o["quantiles"],
        per_quantile=o["per_quantile"],
        include_bos=o["include_bos"],
        seed=o["seed"],
        shard=Shard(shard.index, run.shards),
        progress=progress,
        cancel=cancel,
        log_max_bytes=settings.INDEX_LOG_MAX_BYTES,
    )
    # With one shard the shard's own choice is final: only its examples' values are kept.
    return shard_result_to_bytes(
        acc.state_dict(), candidate_values(acc, only_chosen=run.shards == 1)
    )


@app.task(
    bind=True,
    name="workers.index.index_shard",
    max_retries=MAX_SHARD_RETRIES,
    **time_limits("index"),
)
def index_shard(self: Task, run_id: int, shard_index: int) -> dict[str, Any]:
    """Claim shard `shard_index` of run `run_id` and compute it. A shard that is missing,
    taken or done is skipped (a redelivered or duplicate message). Bad input fails the run;
    other errors put the shard back and retry it, up to MAX_SHARD_RETRIES times."""
    from workers.engine.indexing import IndexingCancelled

    shard = svc.shard_claim(run_id=run_id, index=shard_index, worker=_worker_name())
    if shard is None:
        log.info(
            "index run %s shard %s: not queued (done, taken or gone); skipped", run_id, shard_index
        )
        return {"run": run_id, "shard": shard_index, "skipped": True}
    t0 = time.perf_counter()
    try:
        result = compute_shard(shard)
    except IndexingCancelled:
        svc.shard_release(shard=shard, error="cancelled")
        return {"run": run_id, "shard": shard_index, "cancelled": True}
    except (CorpusError, ValueError) as e:  # bad input: retrying would fail the same way
        svc.run_failed(run_id=run_id, error=str(e), shard_index=shard_index)
        raise
    except SoftTimeLimitExceeded:
        svc.run_failed(
            run_id=run_id, error="shard exceeded the index time limit", shard_index=shard_index
        )
        raise
    except Exception as e:
        if self.request.retries >= MAX_SHARD_RETRIES:
            svc.run_failed(
                run_id=run_id,
                shard_index=shard_index,
                error=f"shard {shard_index} failed {self.request.retries + 1} times: {e}",
            )
            raise
        log.warning("index run %s shard %s failed (%s); retrying", run_id, shard_index, e)
        svc.shard_release(shard=shard, error=str(e))
        raise self.retry(exc=e, countdown=1) from e
    seconds = time.perf_counter() - t0
    svc.shard_done(shard=shard, result=result, seconds=seconds)
    return {"run": run_id, "shard": shard_index, "seconds": seconds}


# -- the merge ----------------------------------------------------------------------------------


def _histogram(stats: FeatureStats, f: int) -> tuple[list[float], list[int]]:
    edges, counts = stats.histogram(f)
    if counts.size == 0:
        return [], []
    edges = edges.astype(float)
    if edges[-1] == float("inf"):  # the overflow bin ends at the feature's max
        edges[-1] = max(float(stats.max[f]), float(edges[-2]))
    return edges.tolist(), counts.astype(int).tolist()


def feature_rows(stats: FeatureStats, facts: dict[str, Any]) -> Iterator[FeatureRow]:
    density, mean, dead = stats.density, stats.mean, stats.dead
    fractions = stats.quantile_fractions()
    for f in range(stats.d_sae):
        edges, counts = _histogram(stats, f)
        live = not dead[f]
        yield FeatureRow(
            index=f,
            density=float(density[f]),
            max_activation=float(stats.max[f]),
            mean_activation=float(mean[f]),
            hist_edges=edges,
            hist_counts=counts,
            quantile_bounds=stats.quantile_bounds[f].astype(float).tolist() if live else [],
            quantile_fractions=fractions[f].tolist() if live else [],
            top_logit_ids=facts["top_ids"][f],
            top_logit_values=facts["top_vals"][f],
            bottom_logit_ids=facts["bottom_ids"][f],
            bottom_logit_values=facts["bottom_vals"][f],
            neighbour_indices=facts["nb_idx"][f],
            neighbour_cosines=facts["nb_cos"][f],
            dead=bool(dead[f]),
        )


def window_arrays(windows: Windows, numbers: np.ndarray) -> WindowArrays:
    """The given windows (numbers, ascending) as the arrays the storage takes."""
    numbers = np.asarray(numbers, np.int64)
    lengths = windows.lengths()[numbers]
    width = int(lengths.max()) if len(numbers) else 0
    tokens = np.zeros((len(numbers), width), np.int32)
    for row, (w, n) in enumerate(zip(numbers, lengths, strict=True)):
        lo = windows.offsets[w]
        tokens[row, :n] = windows.tokens[lo : lo + n]
    return WindowArrays(
        number=numbers,
        token_ids=tokens,
        lengths=lengths.astype(np.int64),
        document=windows.doc[numbers].astype(np.int64),
        offset=windows.start[numbers].astype(np.int64),
    )


def example_arrays(stats: FeatureStats, chunk: ExampleChunk) -> ExampleArrays:
    """One chunk of chosen examples as the arrays the storage takes."""
    quantile = chunk.kind != 0
    safe = np.where(quantile, chunk.bin, 0)
    bounds = stats.quantile_bounds
    return ExampleArrays(
        feature_index=chunk.feature,
        kind=quantile.astype(np.int64),
        quantile_index=safe,
        quantile_low=bounds[chunk.feature, safe].astype(np.float64),
        quantile_high=bounds[chunk.feature, safe + 1].astype(np.float64),
        window=chunk.window,
        max_value=chunk.max_value.astype(np.float64),
        max_position=chunk.max_position,
        nz_offsets=chunk.nz_offsets,
        nz_positions=chunk.nz_positions.astype(np.int32),
        nz_values=np.clip(chunk.nz_values, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16),
    )


def run_examples(
    stats: FeatureStats,
    windows: Windows,
    table: CandidateValues | None,
    att: AttachedSAE,
    *,
    batch_size: int,
    chunk: int = EXAMPLE_CHUNK,
) -> tuple[WindowArrays, Iterator[ExampleArrays]]:
    """The windows the chosen examples use, and the examples as a stream of chunks.

    The values table is prepared now (from ``table``, or by re-running the chosen windows
    when a shard's log overflowed); each chunk is built when the stream reaches it, so at
    most one chunk of examples is held at a time.
    """
    from workers.engine.indexing import chosen_examples, used_windows

    chunks = chosen_examples(stats, windows, table, att, batch_size=batch_size, chunk=chunk)
    return window_arrays(windows, used_windows(stats)), (example_arrays(stats, c) for c in chunks)


def weight_facts(
    att: AttachedSAE, windows: Windows, k: int = 10, *, sae: SAE | None = None
) -> dict[str, Any]:
    """Top/bottom logit tokens and decoder neighbours of every feature, as Python lists, with
    "keys" (a digest of what each kind is computed from) and "reused" (the kinds kept).

    Logit tokens are limited to tokens that occur in the indexed corpus, so a model's
    untrained or glitch tokens do not crowd out the ones a reader can check (and only those
    rows of the unembedding are multiplied). With `sae`, a kind whose key equals the SAE's
    newest finished run's is read from its feature rows instead of recomputed: a re-index
    over the same weights (and, for logits, the same corpus tokens) skips the matrix products.
    """
    import torch

    from workers.engine.facts import (
        decoder_neighbours,
        decoder_neighbours_key,
        logit_effects,
        logit_effects_key,
    )

    seen = torch.zeros(att.lm.model.get_output_embeddings().weight.shape[0], dtype=torch.bool)
    seen[torch.from_numpy(np.unique(windows.tokens).astype(np.int64))] = True
    keys = {
        "logits": logit_effects_key(att, k, seen),
        "neighbours": decoder_neighbours_key(att, k),
    }
    facts: dict[str, Any] = sae_selectors.weight_facts_stored(sae=sae, keys=keys) if sae else {}
    reused = [kind for kind, cols in WEIGHT_FACT_COLUMNS.items() if set(cols) <= set(facts)]
    if "logits" not in reused:
        top_ids, top_vals, bottom_ids, bottom_vals = logit_effects(att, k, vocab_mask=seen)
        facts["top_ids"] = top_ids.tolist()
        facts["top_vals"] = top_vals.float().tolist()
        facts["bottom_ids"] = bottom_ids.tolist()
        facts["bottom_vals"] = bottom_vals.float().tolist()
    if "neighbours" not in reused:
        nb_idx, nb_cos = decoder_neighbours(att, k)
        facts["nb_idx"] = nb_idx.tolist()
        facts["nb_cos"] = nb_cos.float().tolist()
    return {**facts, "keys": keys, "reused": reused}


def offline_labels(
    stats: FeatureStats, windows: Windows, facts: dict[str, Any], vocab: list[str]
) -> list[str]:
    """The offline explainer's label for every feature (workers/engine/explain.py), from each
    top example's peak token and the token before it (read off the windows)."""
    evidence = [
        FeatureEvidence(peak_tokens=[], dead=bool(d), density=float(p))
        for d, p in zip(stats.dead, stats.density, strict=True)
    ]
    feats, ranks = np.nonzero(stats.top_windows >= 0)  # feature by feature, rank order
    w, pos = stats.top_windows[feats, ranks], stats.top_positions[feats, ranks]
    at = windows.offsets[w] + pos
    peak = windows.tokens[at]
    before = np.where(pos > 0, windows.tokens[np.maximum(at - 1, 0)], -1)
    first_real = 1 if windows.has_bos else 0
    for f, p, tok, prev, start in zip(
        feats.tolist(),
        pos.tolist(),
        peak.tolist(),
        before.tolist(),
        windows.start[w].tolist(),
        strict=True,
    ):
        ev = evidence[f]
        ev.peak_tokens.append(vocab[tok])
        previous = vocab[prev] if p > 0 else None
        ev.starts.append(at_document_start(previous=previous, offset=start))
        if p > first_real:  # the token before, unless it is BOS
            ev.previous_tokens.append(previous)
    for f, ev in enumerate(evidence):
        ev.promoted = [vocab[i] for i in facts["top_ids"][f][:3]]
    return labels(evidence)


def finish_run(run: IndexRun) -> tuple[int, int, bool]:
    """Merge the run's shards, add examples and weight facts, swap them in.

    Returns (features, examples, map_missing).
    """
    from workers.engine.candidates import CandidateValues, shard_result_from_bytes
    from workers.engine.stats import FeatureStatsAccumulator

    timings: dict[str, float] = {}
    t = time.perf_counter()
    shards = sae_selectors.index_shard_list(run=run)
    missing = [s.index for s in shards if s.status != s.Status.DONE or s.result is None]
    if missing:
        raise RuntimeError(f"shards {missing} are not done; resume the run")
    timings["shards_s"] = max(s.seconds or 0.0 for s in shards)
    svc.run_phase(run_id=run.pk, phase="merging shards")
    acc, tables = None, []
    for s in shards:
        state, table = shard_result_from_bytes(s.result)
        s.result = None  # parsed: the stored blob is not needed past here
        part = FeatureStatsAccumulator.from_state_dict(state)
        acc = part if acc is None else acc.merge(part)
        tables.append(table)
        del state, part, table
    stats = acc.finalize()
    del acc, shards
    table = None if any(tb is None for tb in tables) else CandidateValues.concat(tables)
    del tables
    timings["merge_s"] = time.perf_counter() - t

    t = time.perf_counter()
    svc.run_phase(run_id=run.pk, phase="examples")
    att = attached_for(run.sae)
    windows = _windows(att, run)
    window_rows, examples = run_examples(
        stats, windows, table, att, batch_size=run.options["batch_size"]
    )
    timings["examples_s"] = time.perf_counter() - t  # the chunks are built while storing

    t = time.perf_counter()
    svc.run_phase(run_id=run.pk, phase="weight facts")
    facts = weight_facts(att, windows, sae=run.sae)
    timings["facts_s"] = time.perf_counter() - t
    # Stored with the run when it is swapped in: the next run compares its keys with these.
    run.options = {**run.options, "facts_keys": facts["keys"], "facts_reused": facts["reused"]}

    t = time.perf_counter()
    label_texts = offline_labels(stats, windows, facts, att.lm.vocab_strings())
    timings["explain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    svc.run_phase(run_id=run.pk, phase="storing")
    n_f, n_e = svc.index_results_replace(
        run=run,
        features=feature_rows(stats, facts),
        windows=window_rows,
        examples=examples,
        timings=timings,
        offline_labels=label_texts,
    )
    timings["store_s"] = time.perf_counter() - t
    svc.run_timings_add(run=run, timings=timings)  # + store_s
    return n_f, n_e, not svc.map_is_laid_out(sae=run.sae)


@app.task(name="workers.index.index_finish", **time_limits("index"))
def index_finish(run_id: int) -> dict[str, Any]:
    """Chord callback: merge and store run `run_id` (skipped when it is gone or finished)."""
    run = sae_selectors.index_run_unfinished(run_id=run_id)
    if run is None:
        return {"run": run_id, "skipped": True}
    try:
        n_f, n_e, map_missing = finish_run(run)
    except Exception as e:
        svc.run_failed(run_id=run_id, error=f"merge failed: {e}")
        raise
    # The map first, then the new labels' embeddings (minutes of CPU at 25k features): the
    # map task schedules them when it ends, so on any worker topology (one worker on both
    # batch queues, or separate ones sharing the CPUs) they never delay the map.
    if map_missing:
        embeddings_backlog_mark(sae_id=run.sae_id)  # the page lists them as pending meanwhile
        sae_map.apply_async((run.sae_id,), kwargs={"then_embed": True}, queue=INDEX_QUEUE)
    else:
        embeddings_schedule(sae_id=run.sae_id)
    _request_evaluation(run)
    if settings.SHOWCASE_CANDIDATES > 0:  # new statistics: new candidates and labels
        compute_showcases.apply_async((run.sae_id,), queue=INDEX_QUEUE)
    return {"run": run_id, "features": n_f, "examples": n_e}


def _request_evaluation(run: IndexRun) -> None:
    """Queue the SAE's quality evaluation on held-out text once its index is stored."""
    tokens = settings.SAE_EVAL_AFTER_INDEX_TOKENS
    if tokens <= 0:
        return
    try:
        evaluations.evaluation_request(sae=run.sae, tokens=tokens)
    except ApplicationError as e:  # e.g. no held-out text: the index stands without metrics
        log.warning("index run %s: no evaluation queued: %s", run.pk, e.message)


# -- the feature map ---------------------------------------------------------------------------

# Decoder directions are reduced to this many principal components before UMAP: the
# neighbour search then works on 50 numbers per feature instead of d_in (768-4096).
MAP_PCA_DIMS = 50
# Above MAP_LARGE_N points: 100 optimisation epochs instead of UMAP's 200 (the layout settles
# well before; the epochs were half of the time at 25k features), and the initial layout from
# PCA instead of the graph's spectral embedding (3 of 10 s there). Measured at 24,576 x 768,
# after the JIT: 13 s of CPU with 200 epochs and spectral, 7 s like this (PCA 3 s extra).
MAP_LARGE_N = 10_000
MAP_LARGE_EPOCHS = 100


def map_layout(directions: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP (cosine) of `directions` [n, d], scaled into [0, 1]; the same for a seed.

    Rows are unit-normalised and, when d > MAP_PCA_DIMS, projected on their top principal
    components (randomised SVD, seeded) first; large maps take fewer epochs and a PCA start
    (MAP_LARGE_N). Returns [n, 2] float32.
    """
    import umap
    from sklearn.decomposition import PCA

    w = np.asarray(directions, dtype=np.float32)  # [n, d]
    n, d = w.shape
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    if d > MAP_PCA_DIMS and n > MAP_PCA_DIMS:
        pca = PCA(n_components=MAP_PCA_DIMS, svd_solver="randomized", random_state=seed)
        w = pca.fit_transform(w).astype(np.float32)  # [n, MAP_PCA_DIMS]
    large = n > MAP_LARGE_N
    xy = umap.UMAP(
        n_neighbors=max(2, min(15, n - 1)),
        metric="cosine",
        n_epochs=MAP_LARGE_EPOCHS if large else None,
        init="pca" if large else "spectral",
        random_state=seed,  # fixes the layout; UMAP then runs single-threaded
        n_jobs=1,
    ).fit_transform(w)  # [n, 2]
    xy = (xy - xy.min(0)) / np.maximum(xy.max(0) - xy.min(0), 1e-9)
    return xy.astype(np.float32)


def map_coordinates(att: AttachedSAE, seed: int = 0) -> tuple[list[float], list[float]]:
    """The feature map of an attached SAE's decoder directions (map_layout), as two lists."""
    w = att.decoder_directions.detach().float().cpu().numpy()  # [d_sae, d_in]
    xy = map_layout(w, seed=seed)
    return xy[:, 0].tolist(), xy[:, 1].tolist()


# Warm-up input: over 4096 points, as UMAP takes its approximate-neighbour path (the one a
# real SAE takes) only from there, and wider than MAP_PCA_DIMS, so PCA runs as well.
WARM_MAP_SHAPE = (4200, 2 * MAP_PCA_DIMS)


@app.task(name="workers.index.warm_map", ignore_result=True, **time_limits("index"))
def warm_map() -> float:
    """Lay out a small random map, so numba compiles UMAP's kernels in this process now (most
    of the first map's time: about 50 of 60 s at 24,576 x 768) rather than in front of the
    first real map. Returns the seconds it took."""
    t = time.perf_counter()
    map_layout(np.random.default_rng(0).standard_normal(WARM_MAP_SHAPE).astype(np.float32))
    seconds = time.perf_counter() - t
    log.info("warm_map: UMAP compiled in %.1f s", seconds)
    return seconds


@app.task(name="workers.index.sae_map", **time_limits("index"))
def sae_map(sae_id: int, then_embed: bool = False) -> dict[str, Any]:
    """Compute and store the feature map of an SAE (weight-only: once per SAE). With
    `then_embed`, schedule the embeddings of its explanations when done (or failed)."""
    try:
        sae = sae_selectors.sae_by_id(sae_id=sae_id)
        if sae is None:
            log.info("sae_map: SAE %s is gone", sae_id)
            return {"sae": sae_id, "skipped": True}
        t = time.perf_counter()
        try:
            xs, ys = map_coordinates(attached_for(sae))
            seconds = time.perf_counter() - t
            stored = svc.map_coordinates_store(sae=sae, xs=xs, ys=ys, seconds=seconds)
        except Exception as e:
            svc.map_failed(sae_id=sae_id, error=f"{type(e).__name__}: {e}")
            raise
        return {"sae": sae_id, "points": stored, "seconds": seconds}
    finally:
        if then_embed:
            embeddings_schedule(sae_id=sae_id)
