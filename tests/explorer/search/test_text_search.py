"""`text:` search over every SAE of a model (explorer/search/services.py _by_text, through
explorer/activations model_activation_test and a real worker on live.demo), on the demo model
with two SAEs (tests/fixtures/saes.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from explorer.activations.services import activation_test
from explorer.search.services import search_results

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TEXT = "The river bank was full of water."


@pytest.fixture(autouse=True)
def _fresh_cache(fresh_activation_cache):
    """Every test here starts with nothing cached (tests/fixtures/services.py)."""


def test_it_lists_the_top_features_of_every_sae_of_the_model(demo_two_saes, celery_worker_proc):
    result = search_results(q=f"text:{TEXT}", model_slug="demo", limit=5)
    assert [(g.sae, g.hook_name, g.url) for g in result.groups] == [
        ("demo", "blocks.1.hook_resid_post", "/demo/demo/"),
        ("deep", "blocks.2.hook_resid_post", "/demo/deep/"),
    ]
    for group in result.groups:
        assert 0 < len(group.hits) <= 5
        assert {h.match for h in group.hits} == {"text"}
        assert group.hits[0].url == f"/demo/{group.sae}/{group.hits[0].index}/"
    assert result.hits == [h for g in result.groups for h in g.hits]


def test_its_values_equal_a_test_of_each_sae_alone(demo_two_saes, celery_worker_proc):
    groups = search_results(q=f"text:{TEXT}", model_slug="demo", limit=5).groups
    for sae, group in zip(demo_two_saes, groups, strict=True):
        cache.clear()  # computed again, by the one-SAE task
        alone = activation_test(model_slug="demo", sae_slug=sae.slug, text=TEXT, top_k=5)
        assert [(h.index, h.activation) for h in group.hits] == [
            (t["index"], t["max_value"]) for t in alone["top_features"]
        ]


def test_each_sae_answer_is_cached_for_tests_of_that_sae(demo_two_saes, celery_worker_proc):
    search_results(q=f"text:{TEXT}", model_slug="demo", limit=5)
    celery_worker_proc.stop()
    for sae in demo_two_saes:  # no worker: served from what the model search cached
        assert activation_test(model_slug="demo", sae_slug=sae.slug, text=TEXT, top_k=5)


def test_with_one_model_in_the_explorer_no_model_need_be_given(demo_two_saes, celery_worker_proc):
    groups = search_results(q=f"text:{TEXT}", limit=3).groups
    assert [g.sae for g in groups] == ["demo", "deep"]


def test_one_sae_in_scope_searches_that_sae_only(demo_two_saes, celery_worker_proc):
    result = search_results(q=f"text:{TEXT}", model_slug="demo", sae_slug="deep", limit=3)
    assert [g.sae for g in result.groups] == ["deep"]
    assert {h.sae for h in result.hits} == {"deep"}


def test_a_text_too_long_for_the_model_is_the_workers_message(demo_two_saes, celery_worker_proc):
    from explorer.core.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="context") as info:
        search_results(q="text:" + "1 " * 200, model_slug="demo")
    assert info.value.code == "invalid_text"
