"""Index runs: create (checked), dispatch over shards, claim, progress, store, resume, cancel.

The flow (DESIGN.md §5 Indexing, §7): `index_run_create` checks everything it can without a
model and writes an IndexRun with one IndexShard row per shard; `index_run_dispatch` sends a
Celery chord (a group of `workers.index.index_shard` tasks, then `index_finish`) on commit.
Each shard task claims its row with a conditional UPDATE, streams its part of the corpus and
stores its mergeable result on the row. The finish task merges, adds weight-only facts and
calls `index_results_replace`, which swaps the SAE's features and examples in one
transaction loaded with COPY: readers see the old data or the new, never a mix.

Torch-free: the web process imports this module. Engine work happens in workers/index.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import chord
from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from explorer.core import tasks
from explorer.core.exceptions import ApplicationError
from explorer.saes.example_copy import (
    EXAMPLE_COLUMNS,
    EXAMPLE_TABLE,
    SIGNATURE,
    TRAILER,
    WINDOW_COLUMNS,
    WINDOW_TABLE,
    ExampleArrays,
    WindowArrays,
    WindowIndex,
    example_copy_rows,
    partition_create_sql,
    partition_index_sql,
    partition_name,
    window_copy_chunks,
)
from explorer.saes.models import SAE, WEIGHT_FACT_FIELDS, IndexRun, IndexShard, SAEMap
from workers.engine.corpus import CorpusError, parse_corpus_spec  # shared contract: no torch

log = logging.getLogger(__name__)

DEFAULTS = {"context": 128, "top": 30, "quantiles": 5, "per_quantile": 5}  # Neuronpedia's
MAX_SHARDS = 1024
FLOAT16_MAX = 65504.0


class IndexRunError(ApplicationError):
    code = "index_run_invalid"


def progress_group(sae_id: int) -> str:
    """Channels group that receives `index.progress` events for one SAE's runs."""
    return f"index-progress-{sae_id}"


def sae_by_ref(ref: str) -> SAE:
    """An SAE by `<model>/<sae>` slugs, its bare slug (when unique) or its id.

    Raises IndexRunError naming the reference when there is no such SAE or it is ambiguous.
    """
    ref = (ref or "").strip()
    qs = SAE.objects.select_related("model")
    if "/" in ref:
        model_slug, _, sae_slug = ref.partition("/")
        found = list(qs.filter(model__slug=model_slug, slug=sae_slug))
    elif ref.isdigit():
        found = list(qs.filter(pk=int(ref)))
    else:
        found = list(qs.filter(slug=ref))
    if not found:
        raise IndexRunError(
            f"unknown SAE {ref!r}: register it with `manage.py add_sae` "
            "(list them in /admin/saes/sae/)",
            code="unknown_sae",
        )
    if len(found) > 1:
        names = ", ".join(str(s) for s in found)
        raise IndexRunError(f"SAE {ref!r} is ambiguous ({names}); use <model>/<sae>")
    return found[0]


def _positive(name: str, value: Any, limit: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IndexRunError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise IndexRunError(f"--{name.replace('_', '-')} must be at most {limit}, got {value}")
    return value


def index_run_create(
    *,
    sae: SAE,
    corpus: str,
    tokens: int,
    shards: int = 1,
    context: int = DEFAULTS["context"],
    top: int = DEFAULTS["top"],
    quantiles: int = DEFAULTS["quantiles"],
    per_quantile: int = DEFAULTS["per_quantile"],
    include_bos: bool = False,
    batch_size: int = 32,
    seed: int = 0,
) -> IndexRun:
    """Check the request and write a queued IndexRun with its shard rows (nothing runs yet).

    Raises IndexRunError for non-positive sizes, a context longer than the model's, too many
    quantile bins, or a corpus spec that cannot be read (missing or empty files); nothing is
    written then.
    """
    _positive("tokens", tokens)
    _positive("shards", shards, MAX_SHARDS)
    _positive("context", context)
    _positive("top", top)
    _positive("quantiles", quantiles, 15)
    _positive("per_quantile", per_quantile)
    _positive("batch_size", batch_size)
    if context > sae.model.n_ctx:
        raise IndexRunError(
            f"--context {context} is longer than model {sae.model.slug!r}'s "
            f"{sae.model.n_ctx} positions"
        )
    if context < 2:
        raise IndexRunError("--context must be at least 2 (BOS + one token)")
    try:
        parse_corpus_spec(corpus)
    except CorpusError as e:
        raise IndexRunError(str(e), code="bad_corpus") from None
    options = {
        "context": context,
        "top": top,
        "quantiles": quantiles,
        "per_quantile": per_quantile,
        "include_bos": include_bos,
        "prepend_bos": bool(sae.preprocessing.get("prepend_bos", True)),
        "batch_size": batch_size,
        "seed": seed,
    }
    with transaction.atomic():
        run = IndexRun.objects.create(
            sae=sae, corpus=corpus.strip(), tokens=tokens, shards=shards, options=options
        )
        IndexShard.objects.bulk_create(IndexShard(run=run, index=i) for i in range(shards))
    return run


def index_run_dispatch(*, run: IndexRun, only_unfinished: bool = False) -> list[int]:
    """Queue the run's shards (all, or those not done) as a chord, after commit.

    Returns the shard indices queued. When every shard is already done only the finish step
    is queued.
    """
    shards = IndexShard.objects.filter(run=run)
    if only_unfinished:
        shards = shards.exclude(status=IndexShard.Status.DONE)
    todo = list(shards.order_by("index").values_list("index", flat=True))

    def send() -> None:
        finish = tasks.signature(
            tasks.INDEX_FINISH, queue=tasks.INDEX_QUEUE, args=(run.pk,), immutable=True
        )
        if todo:
            chord(
                [
                    tasks.signature(
                        tasks.INDEX_SHARD, queue=tasks.INDEX_QUEUE, args=(run.pk, i), immutable=True
                    )
                    for i in todo
                ],
                app=tasks.client,
            )(finish)
        else:
            finish.apply_async()

    transaction.on_commit(send)
    return todo


def index_run_resume(*, run: IndexRun) -> list[int]:
    """Requeue an interrupted or failed run: shards already done are not redone.

    Shards left "running" by a worker that died go back to the queue (the caller asserts the
    old run is no longer running). Raises IndexRunError for a finished run.
    """
    if run.status == IndexRun.Status.DONE:
        raise IndexRunError(f"index run {run.pk} is already done; start a new run to re-index")
    with transaction.atomic():
        IndexShard.objects.filter(run=run).exclude(status=IndexShard.Status.DONE).update(
            status=IndexShard.Status.QUEUED, error=""
        )
        IndexRun.objects.filter(pk=run.pk).update(
            status=IndexRun.Status.QUEUED, error="", finished=None
        )
        return index_run_dispatch(run=run, only_unfinished=True)


# -- called by workers/index.py ------------------------------------------------------------


def shard_claim(*, run_id: int, index: int, worker: str) -> IndexShard | None:
    """Atomically take a queued shard (conditional UPDATE). None: missing, taken or done."""
    n = IndexShard.objects.filter(
        run_id=run_id, index=index, status=IndexShard.Status.QUEUED
    ).update(status=IndexShard.Status.RUNNING, worker=worker, attempts=F("attempts") + 1, error="")
    if n == 0:
        return None
    IndexRun.objects.filter(pk=run_id, status=IndexRun.Status.QUEUED).update(
        status=IndexRun.Status.RUNNING, started=timezone.now()
    )
    return IndexShard.objects.select_related("run__sae__model").get(run_id=run_id, index=index)


def run_is_stopped(run_id: int) -> bool:
    """True when the run was cancelled or failed elsewhere: its shards should stop."""
    return IndexRun.objects.filter(
        pk=run_id, status__in=[IndexRun.Status.CANCELLED, IndexRun.Status.FAILED]
    ).exists()


def shard_progress(*, shard: IndexShard, done: int, total: int) -> None:
    """Record a shard's progress, roll it up into the run, and publish it."""
    IndexShard.objects.filter(pk=shard.pk).update(tokens_done=done, tokens_total=total)
    agg = IndexShard.objects.filter(run_id=shard.run_id).aggregate(
        done=Sum("tokens_done"), total=Sum("tokens_total")
    )
    IndexRun.objects.filter(pk=shard.run_id).update(
        tokens_done=agg["done"] or 0, tokens_total=agg["total"] or 0
    )
    publish_progress(run_id=shard.run_id)


def shard_done(*, shard: IndexShard, result: bytes, seconds: float) -> None:
    """Store a shard's result (tens of MB at 1M tokens) and mark it done."""
    import psycopg

    # A binary parameter: Django's client-side binding would send the bytes as a hex literal
    # twice their size for the server to parse (88 MB: 5.4-7.7 s instead of 3.6-4.1 s).
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(
            f"UPDATE {IndexShard._meta.db_table} SET status = %s, result = %b, "
            "seconds = %s WHERE id = %s",
            [IndexShard.Status.DONE.value, result, seconds, shard.pk],
        )
    publish_progress(run_id=shard.run_id)


def shard_release(*, shard: IndexShard, error: str) -> None:
    """Put a shard back in the queue after a failure that will be retried."""
    IndexShard.objects.filter(pk=shard.pk).update(status=IndexShard.Status.QUEUED, error=error)


def run_failed(*, run_id: int, error: str, shard_index: int | None = None) -> None:
    """Record a failure (the run keeps its old features: nothing was swapped in)."""
    if shard_index is not None:
        IndexShard.objects.filter(run_id=run_id, index=shard_index).update(
            status=IndexShard.Status.FAILED, error=error
        )
    IndexRun.objects.filter(pk=run_id).exclude(status=IndexRun.Status.CANCELLED).update(
        status=IndexRun.Status.FAILED, error=error, finished=timezone.now()
    )
    publish_progress(run_id=run_id)


def run_phase(*, run_id: int, phase: str) -> None:
    """Note the phase the run is in (shown as progress text)."""
    run = IndexRun.objects.filter(pk=run_id).first()
    if run is not None:
        run.options = {**run.options, "phase": phase}
        IndexRun.objects.filter(pk=run_id).update(options=run.options)
        publish_progress(run_id=run_id)


def run_timings_add(*, run: IndexRun, timings: dict[str, float]) -> None:
    """Add to the run's recorded timings (seconds per phase)."""
    IndexRun.objects.filter(pk=run.pk).update(timings={**run.timings, **timings})


def progress_dict(run: IndexRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "sae": run.sae_id,
        "status": run.status,
        "tokens_done": run.tokens_done,
        "tokens_total": run.tokens_total or run.tokens,
        "phase": run.options.get("phase", ""),
        "error": run.error,
    }


_last_publish: dict[int, float] = {}


def publish_progress(*, run_id: int, min_interval: float = 0.5) -> None:
    """Send the run's progress to its SAE's websocket group (at most every `min_interval` s,
    except for final states). Never raises: progress is best effort."""
    run = IndexRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    final = run.status in (IndexRun.Status.DONE, IndexRun.Status.FAILED, IndexRun.Status.CANCELLED)
    now = time.monotonic()
    if not final and now - _last_publish.get(run_id, 0.0) < min_interval:
        return
    _last_publish[run_id] = now
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                progress_group(run.sae_id), {"type": "index.progress", **progress_dict(run)}
            )
    except Exception:
        log.warning("could not publish progress of index run %s", run_id, exc_info=True)


# -- storage ---------------------------------------------------------------------------------


@dataclass
class FeatureRow:
    index: int
    density: float
    max_activation: float
    mean_activation: float
    hist_edges: list[float]
    hist_counts: list[int]
    quantile_bounds: list[float]
    quantile_fractions: list[float]
    top_logit_ids: list[int]
    top_logit_values: list[float]
    bottom_logit_ids: list[int]
    bottom_logit_values: list[float]
    neighbour_indices: list[int]
    neighbour_cosines: list[float]
    dead: bool


_FEATURE_COLUMNS = (
    "sae_id",
    "index",
    "density",
    "max_activation",
    "mean_activation",
    "hist_edges",
    "hist_counts",
    "quantile_bounds",
    "quantile_fractions",
    *WEIGHT_FACT_FIELDS,
    "dead",
)


def _quoted(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)  # "offset" and "values" are SQL keywords


def map_is_laid_out(*, sae: SAE) -> bool:
    """Whether the SAE's feature map is stored (weight-only: it survives a re-index)."""
    return SAEMap.objects.filter(sae=sae).exists()


def index_results_replace(
    *,
    run: IndexRun,
    features: Iterable[FeatureRow],
    windows: WindowArrays,
    examples: Iterable[ExampleArrays],
    timings: dict[str, float],
    offline_labels: list[str] | None = None,
) -> tuple[int, int]:
    """Swap the SAE's features and examples for these, atomically, and mark the run done.

    The examples (a stream of chunks, never all in memory) and the run's windows are loaded
    first, into a standalone table shaped like a partition of `saes_example` and into
    `saes_indexwindow`; no reader sees them yet. Then one short transaction updates the
    feature rows in place (inserted the first time; rows whose values did not change are not
    rewritten), so their ids, and everything that points at them (explanations, votes, list
    items), survive a re-index; the feature map (SAEMap) is not touched. In the
    same transaction the new table replaces the SAE's old partition (detach, attach, drop),
    windows of the SAE's other runs are deleted and the run is marked done: readers see the
    old data or the new, never a mix, and the old examples leave no dead rows behind.
    `offline_labels[i]` becomes feature i's "offline" explanation, updated in place (votes on it
    stay) or created. Returns (features, examples).

    Raises ValueError for an example whose window is not among `windows`.
    """
    sae_id = run.sae_id
    cols = _FEATURE_COLUMNS[1:]  # all but sae_id
    staged = False
    try:
        n_examples = examples_stage(run=run, windows=windows, examples=examples)
        staged = True
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS new_feature")
            cur.execute(
                f"CREATE TEMP TABLE new_feature AS SELECT {_quoted(cols)} "
                "FROM saes_feature WITH NO DATA"
            )
            n_features = 0
            with cur.cursor.copy(f"COPY new_feature ({_quoted(cols)}) FROM STDIN") as cp:
                for f in features:
                    cp.write_row(tuple(getattr(f, c) for c in cols))
                    n_features += 1
            cur.execute('CREATE UNIQUE INDEX ON new_feature ("index")')
            cur.execute("ANALYZE new_feature")

        def swap(cur: Any) -> None:
            _features_merge(cur, sae_id, cols)
            if offline_labels is not None:
                _offline_labels_replace(cur, sae_id, offline_labels)
            IndexRun.objects.filter(pk=run.pk).update(
                status=IndexRun.Status.DONE,
                finished=timezone.now(),
                error="",
                timings={**run.timings, **timings},
                options={
                    **run.options,
                    "phase": "done",
                    "features": n_features,
                    "examples": n_examples,
                },
            )
            # The shards' partial results are no longer needed once their merge is stored.
            IndexShard.objects.filter(run=run).update(result=None)

        examples_swap(run=run, also=swap)
        staged = False
    finally:
        if staged:  # failed after the load: nothing was swapped in
            examples_unstage(run=run)
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS new_feature")
    if not connection.in_atomic_block:
        # Space of the updated feature rows and deleted windows is reused by the next run.
        with connection.cursor() as cur:
            cur.execute("VACUUM saes_feature")
            cur.execute(f"VACUUM {WINDOW_TABLE}")
    transaction.on_commit(lambda: publish_progress(run_id=run.pk))
    return n_features, n_examples


def _features_merge(cur: Any, sae_id: int, cols: tuple[str, ...]) -> None:
    """Update the SAE's feature rows from new_feature where a value changed; insert new ones."""
    new_value = {c: f'n."{c}"' for c in cols}
    own = [c for c in cols if c != "index"]
    sets = ", ".join(f'"{c}" = {new_value[c]}' for c in own)
    old_row = ", ".join(f'f."{c}"' for c in own)
    new_row = ", ".join(new_value[c] for c in own)
    cur.execute(
        f"UPDATE saes_feature f SET {sets} FROM new_feature n "
        f'WHERE f.sae_id = %s AND f."index" = n."index" '
        f"AND ({old_row}) IS DISTINCT FROM ({new_row})",
        [sae_id],
    )
    cur.execute(
        f"INSERT INTO saes_feature (sae_id, {_quoted(cols)}) "
        f"SELECT %s, {', '.join(f'n.{chr(34)}{c}{chr(34)}' for c in cols)} "
        "FROM new_feature n WHERE NOT EXISTS (SELECT 1 FROM saes_feature f "
        'WHERE f.sae_id = %s AND f."index" = n."index")',
        [sae_id, sae_id],
    )


def examples_stage(
    *, run: IndexRun, windows: WindowArrays, examples: Iterable[ExampleArrays]
) -> int:
    """Load run `run`'s windows and examples where no reader looks yet: the windows into
    saes_indexwindow (no example points at them until the swap), the examples by binary COPY,
    chunk by chunk, into a standalone table shaped like a partition, then its indexes.
    Committed on its own unless the caller holds a transaction. Returns the examples loaded.
    """
    sae_id = run.sae_id
    with transaction.atomic(), connection.cursor() as cur:
        raw = cur.cursor  # psycopg 3 cursor: COPY
        cur.execute(f"DELETE FROM {WINDOW_TABLE} WHERE run_id = %s", [run.pk])  # a retried run
        with raw.copy(
            f"COPY {WINDOW_TABLE} ({_quoted(WINDOW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            for chunk in window_copy_chunks(windows, run.pk):
                cp.write(chunk)
        cur.execute(f"SELECT number, id FROM {WINDOW_TABLE} WHERE run_id = %s", [run.pk])
        index = WindowIndex.of(windows, dict(cur.fetchall()))
        for sql in partition_create_sql(sae_id, run.pk):
            cur.execute(sql)
        n = 0
        table = partition_name(sae_id, run.pk)
        with raw.copy(
            f"COPY {table} ({_quoted(EXAMPLE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as cp:
            cp.write(SIGNATURE)
            for chunk in examples:
                cp.write(example_copy_rows(chunk, sae_id, index))
                n += len(chunk)
            cp.write(TRAILER)
        for sql in partition_index_sql(sae_id, run.pk):
            cur.execute(sql)
    return n


def examples_unstage(*, run: IndexRun) -> None:
    """Drop what examples_stage loaded for a run that was not swapped in."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {partition_name(run.sae_id, run.pk)}")
        cur.execute(f"DELETE FROM {WINDOW_TABLE} WHERE run_id = %s", [run.pk])


# Per try: while the swap waits for its lock, new readers of examples queue behind it, so it
# waits briefly and tries again (an export streams for minutes holding a shared lock).
SWAP_LOCK_TIMEOUT = "2s"
SWAP_PATIENCE_S = 900.0  # then the run fails (the staged examples are dropped)


def examples_swap(*, run: IndexRun, also: Any = None) -> None:
    """Make run `run`'s staged examples the SAE's examples, in one transaction with `also(cur)`.

    Detaching the old partition takes a brief ACCESS EXCLUSIVE lock on saes_example: each
    try waits for it at most SWAP_LOCK_TIMEOUT, then the whole transaction is tried again
    after a pause, for SWAP_PATIENCE_S at most. Raises OperationalError when it never got it.
    """
    import psycopg

    sae_id = run.sae_id
    new = partition_name(sae_id, run.pk)
    deadline = time.monotonic() + SWAP_PATIENCE_S
    while True:
        try:
            with transaction.atomic(), connection.cursor() as cur:
                # Serialise re-indexes of one SAE; readers are not blocked.
                cur.execute("SELECT id FROM saes_sae WHERE id = %s FOR UPDATE", [sae_id])
                cur.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                if also is not None:
                    also(cur)
                old = example_partitions(cur, sae_id)
                for name in old:
                    cur.execute(f"ALTER TABLE {EXAMPLE_TABLE} DETACH PARTITION {name}")
                cur.execute(
                    f"ALTER TABLE {EXAMPLE_TABLE} ATTACH PARTITION {new} "
                    f"FOR VALUES IN ({int(sae_id)})"
                )
                for name in old:
                    cur.execute(f"DROP TABLE {name}")
                cur.execute(
                    f"DELETE FROM {WINDOW_TABLE} WHERE run_id IN "
                    "(SELECT id FROM saes_indexrun WHERE sae_id = %s AND id <> %s)",
                    [sae_id, run.pk],
                )
            return
        except OperationalError as e:
            if not isinstance(e.__cause__, psycopg.errors.LockNotAvailable) or (
                time.monotonic() > deadline
            ):
                raise
            log.warning("swap of run %s waited too long for a lock; trying again", run.pk)
            time.sleep(1.0)


def example_partitions(cur: Any, sae_id: int) -> list[str]:
    """The partitions of saes_example that hold SAE `sae_id` (none or one)."""
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = %s",
        [EXAMPLE_TABLE, f"FOR VALUES IN ({int(sae_id)})"],
    )
    return [r[0] for r in cur.fetchall()]


def examples_drop(*, sae_id: int) -> None:
    """Drop an SAE's examples partition (its windows go with its runs)."""
    with transaction.atomic(), connection.cursor() as cur:
        for name in example_partitions(cur, sae_id):
            cur.execute(f"DROP TABLE {name}")


OFFLINE_METHOD = "offline"


def _offline_labels_replace(cur: Any, sae_id: int, labels: list[str]) -> None:
    """One "offline" explanation per feature (explorer.explanations), in the caller's
    transaction: changed texts are updated in place (their score reset), missing ones made."""
    cur.execute('CREATE TEMP TABLE new_label ("index" int, text text) ON COMMIT DROP')
    with cur.cursor.copy('COPY new_label ("index", text) FROM STDIN') as cp:
        for i, text in enumerate(labels):
            cp.write_row((i, text))
    cur.execute(
        "UPDATE explanations_explanation e SET text = n.text, score = NULL, score_method = '', "
        "score_sample_size = NULL "
        'FROM new_label n JOIN saes_feature f ON f.sae_id = %s AND f."index" = n."index" '
        "WHERE e.feature_id = f.id AND e.method = %s AND e.text <> n.text",
        [sae_id, OFFLINE_METHOD],
    )
    cur.execute(
        "INSERT INTO explanations_explanation (feature_id, text, method, score_method, created) "
        "SELECT f.id, n.text, %s, '', now() FROM new_label n "
        'JOIN saes_feature f ON f.sae_id = %s AND f."index" = n."index" '
        "WHERE NOT EXISTS (SELECT 1 FROM explanations_explanation e "
        "WHERE e.feature_id = f.id AND e.method = %s)",
        [OFFLINE_METHOD, sae_id, OFFLINE_METHOD],
    )


def map_coordinates_store(
    *, sae: SAE, xs: list[float], ys: list[float], seconds: float | None = None
) -> int:
    """Store the SAE's feature map: `xs[i]`, `ys[i]` are feature i's point (one row, replaced).

    Returns the number of points. Raises IndexRunError when the lists differ in length or do
    not hold one point per feature of the SAE.
    """
    if len(xs) != len(ys) or len(xs) != sae.d_sae:
        raise IndexRunError(
            f"a map needs one point per feature: {len(xs)} xs and {len(ys)} ys "
            f"for {sae.d_sae} features"
        )
    SAEMap.objects.update_or_create(
        sae=sae,
        defaults={"xs": xs, "ys": ys, "computed": timezone.now(), "seconds": seconds},
    )
    cache.delete(_map_failed_key(sae.pk))
    return len(xs)


def _map_failed_key(sae_id: int) -> str:
    return f"saes:map-failed:{sae_id}"


MAP_FAILED_TTL_S = 7 * 24 * 3600


def map_failed(*, sae_id: int, error: str) -> None:
    """Note that laying out the SAE's map failed (the SAE page says so instead of "not laid out
    yet"); storing a map clears it. Kept in the cache: a lost note only loses the wording."""
    cache.set(_map_failed_key(sae_id), error[:500], MAP_FAILED_TTL_S)


def map_failure(*, sae_id: int) -> str | None:
    """Why the last layout of the SAE's map failed, if it did and no map was stored since."""
    return cache.get(_map_failed_key(sae_id))
