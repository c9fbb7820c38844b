"""`manage.py index_sae` end to end: real Postgres, Redis and Celery worker, the demo model.

The reference is the engine run in this process over the same windows (the engine's own tests
check it against a brute-force sort of every activation).
"""

from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from explorer.saes.models import Example, Feature, IndexRun, IndexShard
from explorer.saes.selectors import stored_examples
from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKENS = 3000
CONTEXT = 32
WORDS = [
    "the",
    "state",
    "of",
    "the",
    "union",
    "was",
    "read",
    "to",
    "the",
    "people",
    ".",
    "she",
    "said",
    "that",
    "the",
    "weather",
    "in",
    "the",
    "city",
    "would",
    "be",
    "fine",
    ",",
    "and",
    "the",
    "market",
    "rose",
    "by",
    "3",
    "percent",
    "on",
    "monday",
    "while",
    "the",
    "river",
    "ran",
    "high",
    ";",
    "children",
    "played",
    "in",
    "the",
    "park",
    "and",
    "the",
    "court",
    "ruled",
    "on",
    "the",
    "case",
]


def _corpus(tmp_path, n_docs: int = 60, seed: int = 0):
    rng = random.Random(seed)
    path = tmp_path / "corpus.jsonl"
    with path.open("w") as fh:
        for _ in range(n_docs):
            fh.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(80))}) + "\n")
    return path


@pytest.fixture
def demo_sae(transactional_db):
    from workers.registration import sae_register_from_specs

    return sae_register_from_specs(model_spec="demo", sae_spec="demo").sae


def _index(corpus, **kw):
    args = {"corpus": str(corpus), "tokens": TOKENS, "context": CONTEXT, "batch_size": 8, **kw}
    call_command("index_sae", "demo/demo", **args)
    return IndexRun.objects.order_by("-created").first()


def _snapshot(sae) -> dict:
    feats = {
        f.index: (
            f.density,
            f.max_activation,
            f.mean_activation,
            tuple(f.hist_edges),
            tuple(f.hist_counts),
            f.dead,
        )
        for f in Feature.objects.filter(sae=sae)
    }
    exs = sorted(
        (
            e.feature_index,
            e.kind,
            e.quantile_index,
            e.max_value,
            e.max_position,
            tuple(e.token_ids),
            tuple(e.values),
            e.document,
            e.offset,
        )
        for e in stored_examples(sae_id=sae.pk, feature_indices=list(feats))
    )
    return {"features": feats, "examples": exs}


def _reference(corpus):
    from workers.engine.corpus import iter_documents
    from workers.engine.indexing import index_corpus, make_windows
    from workers.resident import attached_sae

    att = attached_sae("demo", "demo")
    windows = make_windows(att.lm, iter_documents(str(corpus)), context=CONTEXT, tokens=TOKENS)
    return index_corpus(att, windows, batch_size=8)


def test_index_sae_stores_every_feature_with_the_engine_statistics(
    demo_sae, celery_worker_proc, tmp_path
):
    corpus = _corpus(tmp_path)
    run = _index(corpus)
    assert run.status == "done", run.error
    ref = _reference(corpus)
    feats = {f.index: f for f in Feature.objects.filter(sae=demo_sae)}
    assert len(feats) == demo_sae.d_sae
    np.testing.assert_array_equal(
        [feats[i].max_activation for i in range(ref.d_sae)], ref.max.astype(float)
    )
    np.testing.assert_allclose([feats[i].density for i in range(ref.d_sae)], ref.density)
    assert [feats[i].dead for i in range(ref.d_sae)] == ref.dead.tolist()
    assert any(f.dead for f in feats.values()) and not all(f.dead for f in feats.values())
    # Top examples: the same (value, window) order as the engine's top-K.
    live = int(np.flatnonzero(~ref.dead)[0])
    top = stored_examples(sae_id=demo_sae.pk, feature_indices=[live], kind="top")
    # (the stored max is a float4, as the engine's value is a float32)
    assert [np.float32(e.max_value) for e in top] == [v for v in ref.top_values[live] if v > 0][
        : len(top)
    ]
    for e in top:
        values = e.values
        assert len(values) == len(e.token_ids) <= CONTEXT
        assert values[e.max_position] == pytest.approx(e.max_value, rel=1e-3)
        assert e.max_position > 0  # BOS is left out of the window's maximum
    # Quantile examples lie inside their bin bounds.
    for e in stored_examples(sae_id=demo_sae.pk, feature_indices=list(feats), kind="quantile"):
        assert e.quantile_low <= e.max_value < e.quantile_high or e.max_value == e.quantile_high
    # Each quantile bin's share of the activations is stored (they add up to 1).
    assert sum(feats[live].quantile_fractions) == pytest.approx(1.0)
    assert (
        len(feats[live].quantile_bounds) == 6
        and feats[live].quantile_bounds[-1] == feats[live].max_activation
    )
    # Weight facts are stored.
    f = feats[live]
    assert len(f.top_logit_ids) == 10 and len(f.neighbour_indices) == 10
    assert f.top_logit_values == sorted(f.top_logit_values, reverse=True)
    # The offline explainer labelled every feature; a token-like feature names its top token.
    from explorer.explanations.models import Explanation

    labels = dict(
        Explanation.objects.filter(feature__sae=demo_sae, method="offline").values_list(
            "feature__index", "text"
        )
    )
    assert len(labels) == demo_sae.d_sae
    vocab = demo_sae.model.vocab
    peaks = [vocab[e.token_ids[e.max_position]] for e in top]
    if peaks.count(peaks[0]) / len(peaks) >= 0.5:
        assert labels[live].startswith('"' + peaks[0].replace("\n", "⏎"))
    assert all(labels[i].startswith("dead") for i in np.flatnonzero(ref.dead)[:5])
    # Logit tokens are tokens of the corpus.
    from workers.resident import attached_sae

    tokenizer = attached_sae("demo", "demo").lm.tokenizer
    corpus_ids = {
        t
        for line in corpus.read_text().splitlines()
        for t in tokenizer(json.loads(line)["text"])["input_ids"]
    }
    assert set(f.top_logit_ids) <= corpus_ids
    run.refresh_from_db()
    assert run.tokens_done == run.tokens_total == TOKENS
    assert run.options["include_bos"] is False and run.options["context"] == CONTEXT


def test_three_shards_give_exactly_the_one_shard_result(demo_sae, celery_worker_proc, tmp_path):
    corpus = _corpus(tmp_path)
    from explorer.explanations.models import Explanation

    _index(corpus, shards=1)
    one = _snapshot(demo_sae)
    feature = Feature.objects.get(sae=demo_sae, index=5)
    note = Explanation.objects.create(feature=feature, text="written by a person", method="human")
    run = _index(corpus, shards=3)
    assert run.status == "done" and IndexShard.objects.filter(run=run, status="done").count() == 3
    assert _snapshot(demo_sae) == one
    # Re-indexing updates features in place: what points at them survives.
    note.refresh_from_db()
    assert note.feature_id == Feature.objects.get(sae=demo_sae, index=5).pk == feature.pk


def test_a_killed_worker_and_a_resumed_run_give_the_uninterrupted_result(
    demo_sae, celery_worker_proc, tmp_path
):
    corpus = _corpus(tmp_path)
    _index(corpus, shards=3)
    expected = _snapshot(demo_sae)
    Feature.objects.filter(sae=demo_sae).delete()

    from explorer.saes import indexing as svc

    run = svc.index_run_create(
        sae=demo_sae, corpus=str(corpus), tokens=TOKENS, shards=3, context=CONTEXT, batch_size=8
    )
    svc.index_run_dispatch(run=run)  # autocommit: sent at once
    wait_until(
        IndexShard.objects.filter(run=run, status="done").exists,
        timeout=120,
        interval=0.05,
        message="no shard finished",
    )
    celery_worker_proc.stop()  # SIGKILL mid-run: later shards never ran or were cut short
    run.refresh_from_db()
    assert run.status != "done"
    done_before = set(
        IndexShard.objects.filter(run=run, status="done").values_list("index", flat=True)
    )
    celery_worker_proc.start()
    call_command("index_sae", resume=run.pk)
    run.refresh_from_db()
    assert run.status == "done", run.error
    # Shards finished before the kill were not redone.
    assert all(s.attempts == 1 for s in IndexShard.objects.filter(run=run, index__in=done_before))
    assert _snapshot(demo_sae) == expected


def test_readers_during_a_reindex_see_only_complete_data(demo_sae, celery_worker_proc, tmp_path):
    corpus_a, corpus_b = _corpus(tmp_path, seed=1), None
    _index(corpus_a)
    total_a = (
        Feature.objects.filter(sae=demo_sae).count(),
        Example.objects.filter(sae=demo_sae).count(),
    )
    (tmp_path / "b").mkdir()
    corpus_b = _corpus(tmp_path / "b", seed=2)
    seen, stop = set(), threading.Event()

    def read() -> None:
        from django.db import connections

        conn = connections.create_connection("default")
        try:
            while not stop.is_set():
                with conn.cursor() as cur:  # one statement: one snapshot
                    cur.execute(
                        "SELECT (SELECT count(*) FROM saes_feature WHERE sae_id = %s), "
                        "(SELECT count(*) FROM saes_example WHERE sae_id = %s), "
                        "(SELECT max(max_activation) FROM saes_feature WHERE sae_id = %s)",
                        [demo_sae.pk] * 3,
                    )
                    seen.add(cur.fetchone())
        finally:
            conn.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        _index(corpus_b)
    finally:
        stop.set()
        reader.join()
    after = (
        Feature.objects.filter(sae=demo_sae).count(),
        Example.objects.filter(sae=demo_sae).count(),
    )
    assert {s[:2] for s in seen} <= {total_a, after}
    assert all(s[0] == demo_sae.d_sae for s in seen)
    assert len({s[2] for s in seen}) <= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokens": 0}, "--tokens must be a positive integer"),
        ({"tokens": -5}, "--tokens must be a positive integer"),
        ({"context": 100_000}, "is longer than model"),
        ({"corpus": "/nonexistent/corpus.txt"}, "does not exist"),
        ({"sae_ref": "demo/nope"}, "unknown SAE"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(demo_sae, tmp_path, kwargs, message):
    corpus = _corpus(tmp_path)
    args = {"corpus": str(corpus), "tokens": 100, **kwargs}
    ref = args.pop("sae_ref", "demo/demo")
    with pytest.raises(CommandError, match=message):
        call_command("index_sae", ref, **args)
    assert not IndexRun.objects.exists() and not Feature.objects.exists()


def test_an_empty_corpus_file_is_refused(demo_sae, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CommandError, match="is empty"):
        call_command("index_sae", "demo/demo", corpus=str(tmp_path / "empty.txt"), tokens=100)
    assert not IndexRun.objects.exists()


def test_a_corpus_without_tokens_fails_the_run_and_writes_no_features(
    demo_sae, celery_worker_proc, tmp_path
):
    path = tmp_path / "blank.jsonl"
    path.write_text(json.dumps({"text": ""}) + "\n")
    with pytest.raises(CommandError, match="the corpus is empty"):
        call_command("index_sae", "demo/demo", corpus=str(path), tokens=100)
    assert IndexRun.objects.get().status == "failed"
    assert not Feature.objects.exists()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM saes_example")
        assert cur.fetchone()[0] == 0
