"""The SAE page: a sorted, filtered, keyset-paginated feature table, the map, index progress."""

from __future__ import annotations

import html
import math
import re

import pytest

from explorer.browser import selectors
from explorer.explanations.models import Explanation
from explorer.explanations.services import explanation_create
from explorer.saes.models import Feature, IndexRun, SAEMap
from explorer.search.selectors import database_clock
from explorer.search.services import (
    embeddings_backlog_clear,
    embeddings_backlog_mark,
    explanation_embeddings_store,
)
from tests.builders import make_evaluation, make_sae

pytestmark = pytest.mark.django_db


def indices(body: str) -> list[int]:
    return [
        int(i)
        for i in re.findall(r'<td class="feature-table__index"><a href="/tiny/res-1/(\d+)/">', body)
    ]


def test_it_renders_the_table_sorted_by_index(client, indexed):
    response = client.get("/tiny/res-1/")
    assert response.status_code == 200
    assert indices(response.content.decode()) == list(range(32))


def test_dead_features_are_marked_in_the_table(client, indexed):
    body = client.get("/tiny/res-1/").content.decode()
    assert body.count('<tr class="is-dead">') == 4


def test_sorting_by_density_puts_the_densest_first(client, indexed):
    body = client.get("/tiny/res-1/?sort=density&dir=desc").content.decode()
    expected = list(
        Feature.objects.filter(sae=indexed.sae)
        .order_by("-density", "-index")
        .values_list("index", flat=True)
    )
    assert indices(body) == expected
    assert 'aria-sort="descending"' in body


def test_pages_follow_each_other_without_gaps_or_repeats(indexed):
    for sort in ("index", "density", "max"):
        for direction in ("asc", "desc"):
            seen, after = [], None
            while True:
                page = selectors.feature_table(
                    sae=indexed.sae, sort=sort, direction=direction, after=after, limit=5
                )
                seen += [r.index for r in page.rows]
                if page.next_cursor is None:
                    break
                after = page.next_cursor
            assert sorted(seen) == list(range(32)), (sort, direction)
            assert len(seen) == 32


def test_the_previous_page_is_the_page_before(indexed):
    first = selectors.feature_table(sae=indexed.sae, sort="max", limit=5)
    second = selectors.feature_table(sae=indexed.sae, sort="max", after=first.next_cursor, limit=5)
    back = selectors.feature_table(sae=indexed.sae, sort="max", before=second.prev_cursor, limit=5)
    assert [r.index for r in back.rows] == [r.index for r in first.rows]
    assert back.prev_cursor is None


def test_ties_on_the_sort_column_page_by_index(indexed):
    Feature.objects.filter(sae=indexed.sae).update(density=0.5)
    page = selectors.feature_table(sae=indexed.sae, sort="density", limit=10)
    nxt = selectors.feature_table(sae=indexed.sae, sort="density", after=page.next_cursor, limit=10)
    assert [r.index for r in page.rows] == list(range(31, 21, -1))
    assert [r.index for r in nxt.rows] == list(range(21, 11, -1))


def test_the_next_link_carries_a_cursor_not_an_offset(client, indexed):
    page = selectors.feature_table(sae=indexed.sae, limit=50)
    assert page.next_cursor is None
    body = client.get("/tiny/res-1/?sort=max").content.decode()
    assert "offset" not in body and "page=" not in body


def test_it_filters_by_explanation_text(client, indexed):
    explanation_create(feature=indexed.features[3], text="rivers and banks", method="offline")
    explanation_create(feature=indexed.features[4], text="money in banks", method="offline")
    explanation_create(feature=indexed.features[5], text="cats", method="offline")
    body = client.get("/tiny/res-1/?q=bank").content.decode()
    assert indices(body) == [3, 4]
    assert "rivers and banks" in body


def test_live_only_hides_dead_features(client, indexed):
    body = client.get("/tiny/res-1/?live=1").content.decode()
    assert set(indices(body)).isdisjoint({0, 10, 20, 30})


def test_a_hash_index_in_the_filter_opens_that_feature(client, indexed):
    response = client.get("/tiny/res-1/?q=%2317")
    assert response.status_code == 302
    assert response["Location"] == "/tiny/res-1/17/"


def test_a_malformed_cursor_is_a_404_with_a_message(client, indexed):
    response = client.get("/tiny/res-1/?sort=density&after=nope")
    assert response.status_code == 404
    assert "Bad page cursor" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "name"), [("sort=evil", "sort"), ("sort=max&dir=sideways", "dir")]
)
def test_an_unknown_sort_or_direction_is_a_400_naming_it(client, indexed, query, name):
    response = client.get(f"/tiny/res-1/?q=bank&{query}")
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert f"{name} must be one of" in body
    link = "/tiny/res-1/?q=bank" + ("&sort=max" if name == "dir" else "")
    assert f'href="{link}">Open the page without {name}</a>' in body


def test_an_unknown_sae_gets_a_friendly_404(client, indexed):
    response = client.get("/tiny/nope/")
    assert response.status_code == 404
    assert "No SAE tiny/nope." in response.content.decode()


def test_the_map_placeholder_points_at_the_map_data(client, indexed):
    body = client.get("/tiny/res-1/").content.decode()
    assert 'data-chart="feature-map"' in body
    data = client.get("/tiny/res-1/map.json").json()
    points = data["points"]
    assert points["index"] == list(range(32))
    assert len(points["x"]) == len(points["y"]) == len(points["density"]) == 32
    assert points["dead"][0] == 1 and points["dead"][1] == 0


def test_an_active_index_run_shows_its_progress(client, indexed):
    IndexRun.objects.create(
        sae=indexed.sae,
        corpus="demo",
        tokens=1000,
        tokens_total=1000,
        tokens_done=250,
        status=IndexRun.Status.RUNNING,
    )
    body = client.get("/tiny/res-1/").content.decode()
    assert 'data-enhance="index-progress"' in body
    assert '<progress max="1000" value="250">' in body
    assert client.get("/tiny/res-1/progress.json").json() == {
        "status": "running",
        "tokens_done": 250,
        "tokens_total": 1000,
        "error": "",
    }


def test_no_progress_without_an_active_run(client, indexed):
    IndexRun.objects.create(
        sae=indexed.sae, corpus="demo", tokens=1000, status=IndexRun.Status.DONE
    )
    assert 'data-enhance="index-progress"' not in client.get("/tiny/res-1/").content.decode()


def test_random_opens_a_live_feature(client, indexed):
    for _ in range(5):
        response = client.get("/tiny/res-1/random/")
        assert response.status_code == 302
        index = int(response["Location"].strip("/").split("/")[-1])
        assert index not in indexed.dead


def test_the_model_page_lists_its_saes(client, indexed):
    body = client.get("/tiny/").content.decode()
    assert 'href="/tiny/res-1/"' in body
    assert client.get("/nope/").status_code == 404


def test_the_model_page_offers_a_text_search_over_all_its_saes(client, indexed):
    body = client.get("/tiny/").content.decode()
    form = body[body.index('class="search-form model-text-search"') :]
    form = form[: form.index("</form>")]
    assert 'action="/search/"' in body[body.index("model-text-search") - 100 :]
    assert '<input type="hidden" name="model" value="tiny">' in form
    assert '<input type="hidden" name="mode" value="text">' in form
    assert 'name="q"' in form


def test_the_map_data_is_gzipped_for_clients_that_accept_it(client, indexed):
    response = client.get("/tiny/res-1/map.json", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"


def test_the_map_data_of_an_unknown_sae_is_a_404(client, indexed):
    assert client.get("/tiny/nope/map.json").status_code == 404


def test_features_not_yet_laid_out_come_without_coordinates(client, indexed):
    SAEMap.objects.filter(sae=indexed.sae).delete()
    points = client.get("/tiny/res-1/map.json").json()["points"]
    assert points["x"] == [None] * 32 and points["y"] == [None] * 32
    assert len(points["density"]) == 32  # the density distribution still counts them


def test_the_map_points_are_the_stored_map_in_feature_order(client, indexed):
    points = client.get("/tiny/res-1/map.json").json()["points"]
    assert points["index"] == list(range(32))
    assert points["x"][:2] == [1.0, round(math.cos(1), 4)]
    assert points["y"][:2] == [0.0, round(math.sin(1), 4)]


def _metrics_panel(body: str) -> str:
    start = body.index('<section class="card sae-metrics"')
    return body[start : body.index("</section>", start)]


def test_the_metrics_panel_says_when_they_are_not_computed_yet(client, indexed):
    panel = _metrics_panel(client.get("/tiny/res-1/").content.decode())
    assert 'data-metrics-state="none"' in panel
    assert "Not computed yet" in panel and "manage.py eval_sae tiny res-1" in panel


def test_the_metrics_panel_says_when_they_are_being_computed(client, indexed):
    from tests.builders import make_evaluation

    make_evaluation(indexed.sae, status="running")
    panel = _metrics_panel(client.get("/tiny/res-1/").content.decode())
    assert 'data-metrics-state="computing"' in panel and "Computing the metrics" in panel
    # the page polls the metrics and reloads when they are done
    assert 'data-enhance="metrics-progress"' in panel
    assert 'data-src="/api/v1/models/tiny/saes/res-1/metrics"' in panel


def test_the_metrics_panel_shows_each_figure_with_its_explanation(client, indexed):
    from tests.builders import make_evaluation

    make_evaluation(indexed.sae)
    panel = _metrics_panel(client.get("/tiny/res-1/").content.decode())
    assert 'data-metrics-state="done"' in panel
    assert "on 84,661 held-out tokens of <code>demo:val</code>" in panel
    figures = dict(
        re.findall(
            r'data-metric="(\w+)">.*?<strong class="metric-list__value">([^<]+)</strong>', panel
        )
    )
    assert figures["loss_recovered"] == "97.5%"
    assert figures["explained_variance"] == "92.2%"
    assert figures["l0"] == "20" and figures["kl_div"] == "0.1334"
    assert figures["dead_fraction"] == "0%"
    assert "Share of features that never fire" in panel
    assert "Not computed yet" not in panel


def test_a_failed_evaluation_keeps_the_last_figures_and_says_why(client, indexed):
    from tests.builders import make_evaluation

    make_evaluation(indexed.sae)
    failed = make_evaluation(indexed.sae, status="failed")
    failed.error = "corpus <gone>"
    failed.save()
    panel = _metrics_panel(client.get("/tiny/res-1/").content.decode())
    assert "97.5%" in panel and "The last evaluation failed: corpus &lt;gone&gt;" in panel


def test_the_empty_importance_chart_says_why_and_how_to_fill_it(client, indexed, alice):
    body = client.get("/tiny/res-1/").content.decode()
    assert "No importance computed yet" in body
    assert 'href="/accounts/signup/?next=/tiny/res-1/"' in body
    client.force_login(alice)
    body = client.get("/tiny/res-1/").content.decode()
    url = "/api/v1/models/tiny/saes/res-1/importance"
    assert f'data-importance-compute-all data-url="{url}"' in body


def _pending(body: str) -> str:
    start = body.index('<section class="card pending-steps"')
    return html.unescape(re.sub(r"<[^>]+>", "", body[start : body.index("</section>", start)]))


def _label(feature: Feature, text: str) -> Explanation:
    return Explanation.objects.create(feature=feature, text=text, method="offline")


def test_the_page_says_the_map_is_not_laid_out_yet(client, indexed):
    SAEMap.objects.filter(sae=indexed.sae).delete()
    text = _pending(client.get("/tiny/res-1/").content.decode())
    assert "Still being computed" in text
    assert "Feature map: not laid out yet" in text


def test_the_page_says_when_the_map_could_not_be_laid_out(client, indexed):
    from explorer.saes import indexing as svc

    SAEMap.objects.filter(sae=indexed.sae).delete()
    svc.map_failed(sae_id=indexed.sae.pk, error="MemoryError: <too big>")
    text = _pending(client.get("/tiny/res-1/").content.decode())
    assert "Feature map: the worker could not lay it out (MemoryError: <too big>)" in text
    assert "&lt;too big&gt;" in client.get("/tiny/res-1/").content.decode()  # escaped
    svc.map_coordinates_store(sae=indexed.sae, xs=[0.0] * 32, ys=[0.0] * 32)
    assert 'class="card pending-steps"' not in client.get("/tiny/res-1/").content.decode()


def test_the_page_counts_the_label_embeddings_still_to_compute(client, indexed):
    first, second = _label(indexed.features[1], "rivers"), _label(indexed.features[2], "banks")
    embeddings_backlog_mark(sae_id=indexed.sae.pk)  # what scheduling them does after commit
    text = _pending(client.get("/tiny/res-1/").content.decode())
    assert "Label embeddings: pending" in text and "Feature map" not in text
    explanation_embeddings_store(rows=[(first.pk, "rivers", [0.0] * 384)], model="m")
    text = _pending(client.get("/tiny/res-1/").content.decode())
    assert "Label embeddings: 1 of 2 done" in text
    explanation_embeddings_store(rows=[(second.pk, "banks", [0.0] * 384)], model="m")
    assert 'class="card pending-steps"' not in client.get("/tiny/res-1/").content.decode()


def test_unembedded_labels_nobody_asked_to_embed_are_not_listed_as_being_computed(client, indexed):
    _label(indexed.features[1], "rivers")
    assert 'class="card pending-steps"' not in client.get("/tiny/res-1/").content.decode()


def test_a_sweep_clears_the_backlog_only_if_it_looked_after_the_mark(client, indexed):
    _label(indexed.features[1], "rivers")
    looked_early = database_clock()
    embeddings_backlog_mark(sae_id=indexed.sae.pk)
    embeddings_backlog_clear(sae_id=indexed.sae.pk, looked_at=looked_early)  # missed the text
    assert "Label embeddings: pending" in _pending(client.get("/tiny/res-1/").content.decode())
    embeddings_backlog_clear(sae_id=None, looked_at=database_clock())
    assert 'class="card pending-steps"' not in client.get("/tiny/res-1/").content.decode()


def test_the_page_says_when_the_evaluation_is_queued(client, indexed):
    make_evaluation(indexed.sae, status="queued")
    text = _pending(client.get("/tiny/res-1/").content.decode())
    assert "Quality metrics: queued on held-out text." in text


def test_an_sae_with_nothing_left_to_compute_has_no_pending_card(client, indexed):
    body = client.get("/tiny/res-1/").content.decode()
    assert 'class="card pending-steps"' not in body
    assert client.get("/tiny/res-1/pending.json").json() == {"pending": []}


def test_pending_json_lists_the_steps_in_the_order_workers_do_them(client, indexed):
    SAEMap.objects.filter(sae=indexed.sae).delete()
    _label(indexed.features[1], "rivers")
    embeddings_backlog_mark(sae_id=None)
    make_evaluation(indexed.sae, status="running")
    steps = client.get("/tiny/res-1/pending.json").json()["pending"]
    assert [s["key"] for s in steps] == ["map", "embeddings", "evaluation"]
    assert steps[2] == {
        "key": "evaluation",
        "title": "Quality metrics",
        "text": "running on held-out text.",
    }


def test_an_sae_not_indexed_yet_lists_nothing_pending(client, db):
    make_sae()
    assert client.get("/tiny/res-1/pending.json").json() == {"pending": []}


def test_a_laid_out_map_is_cached_for_a_minute_and_a_missing_one_not_at_all(client, indexed):
    assert client.get("/tiny/res-1/map.json")["Cache-Control"] == "max-age=60"
    SAEMap.objects.filter(sae=indexed.sae).delete()
    assert client.get("/tiny/res-1/map.json")["Cache-Control"] == "no-cache"
