"""A feature read by hand-written SQL (saes/selectors.py feature_with_sae, core/rows.py) is the
same as the ORM's, relations and deferred fields included."""

from __future__ import annotations

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.forms.models import model_to_dict

from explorer.core.exceptions import NotFound
from explorer.importance.models import FeatureImportance
from explorer.saes import selectors
from explorer.saes.models import Feature, IndexRun
from tests.builders import build_indexed_sae


@pytest.fixture
def indexed(db):
    return build_indexed_sae()


def test_it_reads_what_the_orm_reads(indexed, django_assert_num_queries):
    with django_assert_num_queries(1):
        got = selectors.feature_with_sae(model_slug="tiny", sae_slug="res-1", index=5)
        assert (got.sae.slug, got.sae.model.slug) == ("res-1", "tiny")
    orm = Feature.objects.select_related("sae__model").get(sae__slug="res-1", index=5)
    assert model_to_dict(got) == model_to_dict(orm)
    assert model_to_dict(got.sae) == model_to_dict(orm.sae)
    run = IndexRun.objects.filter(sae=orm.sae, status="done").latest("finished")
    assert got.run_options == run.options and isinstance(got.run_options, dict)
    # The vocab was left out: reading it is one more query, as with .defer().
    with django_assert_num_queries(1):
        assert got.sae.model.vocab == orm.sae.model.vocab


def test_a_one_to_one_row_is_loaded_or_known_missing(indexed, django_assert_num_queries):
    with django_assert_num_queries(1):
        got = selectors.feature_with_sae(
            model_slug="tiny", sae_slug="res-1", index=5, one_to_one=FeatureImportance
        )
        with pytest.raises(ObjectDoesNotExist):
            got.importance  # noqa: B018 (cached as missing: no query)
    FeatureImportance.objects.create(feature=got, status="done", loss_zero=1.5)
    got = selectors.feature_with_sae(
        model_slug="tiny", sae_slug="res-1", index=5, one_to_one=FeatureImportance
    )
    with django_assert_num_queries(0):
        assert (got.importance.status, got.importance.loss_zero) == ("done", 1.5)


@pytest.mark.parametrize(
    ("model", "sae", "index", "words"),
    [
        ("tiny", "res-1", 32, "numbered 0 to 31"),
        ("tiny", "res-1", -1, "numbered 0 to 31"),
        ("tiny", "nope", 1, "tiny/nope"),
        ("nope", "res-1", 1, "nope"),
    ],
)
def test_a_miss_says_what_is_missing(indexed, model, sae, index, words):
    with pytest.raises(NotFound) as err:
        selectors.feature_with_sae(model_slug=model, sae_slug=sae, index=index)
    assert words in err.value.message
