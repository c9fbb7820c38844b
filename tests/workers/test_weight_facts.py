"""Weight facts of an index run: a re-index over the same weights and corpus tokens keeps the
stored ones instead of recomputing them; anything else recomputes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from explorer.saes.models import Feature, IndexRun
from explorer.saes.selectors import WEIGHT_FACT_COLUMNS
from tests.builders import make_sae

NAMES = ("top_ids", "top_vals", "bottom_ids", "bottom_vals", "nb_idx", "nb_cos")


@pytest.fixture(scope="module")
def demo():
    from workers.engine.indexing import make_windows
    from workers.resident import attached_sae

    att = attached_sae("demo", "demo")
    docs = [f"the river bank number {i} held money and water" for i in range(200)]
    windows = make_windows(att.lm, docs, context=32, tokens=2000)
    return att, windows, make_windows(att.lm, docs[:5], context=32, tokens=100)


def _store(sae, facts: dict) -> None:
    """Feature rows holding `facts` and a finished run that computed them."""
    columns = {name: col for cols in WEIGHT_FACT_COLUMNS.values() for name, col in cols.items()}
    Feature.objects.bulk_create(
        Feature(sae=sae, index=i, **{col: facts[name][i] for name, col in columns.items()})
        for i in range(sae.d_sae)
    )
    IndexRun.objects.create(
        sae=sae,
        corpus="test",
        tokens=0,
        status=IndexRun.Status.DONE,
        finished=timezone.now(),
        options={"facts_keys": facts["keys"]},
    )


@pytest.mark.django_db
def test_the_same_weights_and_tokens_keep_the_stored_facts(demo):
    from workers.index import weight_facts

    att, windows, _ = demo
    fresh = weight_facts(att, windows)
    assert fresh["reused"] == []
    sae = make_sae(d_sae=att.d_sae)
    _store(sae, fresh)
    again = weight_facts(att, windows, sae=sae)
    assert again["reused"] == ["logits", "neighbours"]
    assert again["keys"] == fresh["keys"]
    assert all(again[n] == fresh[n] for n in NAMES)


@pytest.mark.django_db
def test_other_corpus_tokens_recompute_the_logits_and_keep_the_neighbours(demo):
    from workers.index import weight_facts

    att, windows, fewer = demo
    sae = make_sae(d_sae=att.d_sae)
    _store(sae, weight_facts(att, windows))
    other = weight_facts(att, fewer, sae=sae)
    assert other["reused"] == ["neighbours"]
    assert all(other[n] == weight_facts(att, fewer)[n] for n in NAMES)


@pytest.mark.django_db
def test_rows_missing_a_feature_or_a_run_without_keys_recompute_everything(demo):
    from workers.index import weight_facts

    att, windows, _ = demo
    facts = weight_facts(att, windows)
    sae = make_sae(d_sae=att.d_sae)
    _store(sae, facts)
    Feature.objects.filter(sae=sae, index=3).delete()
    assert weight_facts(att, windows, sae=sae)["reused"] == []
    other = make_sae(sae.model, d_sae=att.d_sae, slug="res-2", source="other")
    _store(other, facts)
    IndexRun.objects.filter(sae=other).update(options={})
    assert weight_facts(att, windows, sae=other)["reused"] == []
