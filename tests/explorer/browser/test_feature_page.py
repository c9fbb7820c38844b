"""The feature page (the permalink /<model>/<sae>/<index>/) and its embed."""

from __future__ import annotations

import html
import re

import pytest

from explorer.explanations.services import explanation_create
from explorer.lists.models import FeatureList

pytestmark = pytest.mark.django_db


def get(client, url: str):
    response = client.get(url)
    return response, response.content.decode()


def test_it_shows_the_best_explanation_first(client, indexed):
    explanation_create(feature=indexed.features[3], text="weak guess", method="offline", score=0.1)
    explanation_create(feature=indexed.features[3], text="good guess", method="offline", score=0.9)
    _, body = get(client, "/tiny/res-1/3/")
    assert '<p class="explanation-main">good guess</p>' in body
    assert "1 more explanation" in body


def test_it_renders_stats_histogram_logits_and_examples(client, indexed):
    response, body = get(client, "/tiny/res-1/3/")
    assert response.status_code == 200
    assert 'data-chart="histogram"' in body and 'id="histogram-data"' in body
    assert 'data-chart="logits"' in body and body.count('class="logit-row"') == 6
    assert 'data-chart="examples"' in body
    assert "Top activations" in body
    assert body.count('<li class="example">') == 4
    assert body.count("token--max") == 4


def test_quantile_intervals_say_their_bounds_and_share(client, indexed):
    f = indexed.features[3]
    _, body = get(client, "/tiny/res-1/3/")
    # The interval [0, max/5) holds 4/5 of the first histogram bin [0, max/4): 40 of 80 counts.
    assert f"Interval 0–{f.max_activation / 5:.3g}" in body
    assert "contains 50%" in body


def test_token_text_is_escaped(client, indexed):
    # Live feature 9 peaks on vocab[9] == " <script>".
    _, body = get(client, "/tiny/res-1/9/")
    assert "<script>" not in body.replace('<script id="', "").replace('<script type="', "")
    assert "&lt;script&gt;" in body


def test_examples_are_highlighted_before_javascript_runs(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    strip = re.search(
        r'<span class="token-strip[^"]*">(.*?)</span>\s*</div>', body, re.DOTALL
    ).group(1)
    assert "background-color: rgb(" in strip
    assert "data-value=" in strip


def test_the_context_width_can_be_chosen_in_the_url(client, indexed):
    _, narrow = get(client, "/tiny/res-1/3/?ctx=5")
    _, full = get(client, "/tiny/res-1/3/?ctx=full")
    assert narrow.count('class="token ') <= full.count('class="token ')
    assert 'data-context="5"' in narrow
    assert 'aria-current="true">full<' in full


def test_prev_next_and_random_links_are_there(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    assert 'href="/tiny/res-1/2/" rel="prev" data-key="ArrowLeft"' in body
    assert 'href="/tiny/res-1/4/" rel="next" data-key="ArrowRight"' in body
    assert 'href="/tiny/res-1/random/" data-key="r"' in body
    _, first = get(client, "/tiny/res-1/0/")
    assert 'rel="prev"' not in first


def test_neighbours_link_with_their_cosine(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    assert 'href="/tiny/res-1/4/"><span class="neighbours__index">#4</span>' in body
    assert '<span class="neighbours__cos">0.500</span>' in body


def test_a_dead_feature_says_so_instead_of_empty_charts(client, indexed):
    _, body = get(client, "/tiny/res-1/10/")
    assert "This feature is dead." in body
    assert 'data-chart="histogram"' not in body
    assert 'data-chart="examples"' not in body


def test_the_steer_link_opens_the_lead_in_of_the_top_example_at_4x_max_activation(client, indexed):
    import html
    from urllib.parse import parse_qs, urlsplit

    from explorer.saes.selectors import stored_examples, vocab_get

    f = indexed.features[3]
    top = stored_examples(sae_id=f.sae_id, feature_indices=[3], kind="top")[0]
    tokens = vocab_get(model=indexed.sae.model).tokens(top.token_ids)[: top.max_position]
    _, body = get(client, "/tiny/res-1/3/")
    href = html.unescape(re.search(r'href="(/tiny/steer/\?[^"]*)"', body).group(1))
    q = parse_qs(urlsplit(href).query, keep_blank_values=True)
    assert q["f"] == [f"res-1:3:{4 * f.max_activation:.3g}"]
    assert q["prompt"][0] and q["prompt"][0] in "".join(tokens)


def test_text_in_the_url_prefills_the_test_form(client, indexed):
    _, body = get(client, "/tiny/res-1/3/?text=the+cat+%3Cb%3E")
    assert ">the cat &lt;b&gt;</textarea>" in body
    assert 'data-enhance="activation-test"' in body


def test_an_over_long_test_text_gets_a_clear_message(client, indexed, settings):
    settings.EXPLORER_TEST_TEXT_MAX_CHARS = 50
    _, body = get(client, "/tiny/res-1/3/?text=" + "a" * 51)
    assert "This text is 51 characters long; the limit is 50." in body
    assert 'role="alert"' in body
    assert 'maxlength="50"' in body


def test_an_over_long_test_text_is_left_out_of_the_pages_links(client, indexed, settings):
    settings.EXPLORER_TEST_TEXT_MAX_CHARS = 50
    _, body = get(client, "/tiny/res-1/3/?text=" + "a" * 5000)
    assert "This text is 5,000 characters long; the limit is 50." in body
    assert "a" * 51 not in body  # not in the context width links, sign-in links or og:url
    assert '<meta property="og:url" content="http://testserver/tiny/res-1/3/">' in body


def test_an_unknown_context_width_is_a_400_naming_it(client, indexed):
    response, body = get(client, "/tiny/res-1/3/?ctx=huge")
    assert response.status_code == 400
    assert "ctx must be one of 5, 16, full" in html.unescape(body)


def test_an_index_beyond_the_sae_is_a_friendly_404(client, indexed):
    response, body = get(client, "/tiny/res-1/32/")
    assert response.status_code == 404
    assert "has no feature 32: its features are numbered 0 to 31." in body
    assert get(client, "/tiny/res-1/99999999999999/")[0].status_code == 404


def test_a_non_numeric_index_is_a_friendly_404(client, indexed):
    response, body = get(client, "/tiny/res-1/abc/")
    assert response.status_code == 404
    assert html.escape("'abc' is not a feature index") in body


def test_an_unknown_model_is_a_404(client, indexed):
    assert client.get("/nope/res-1/3/").status_code == 404


def test_it_carries_opengraph_tags(client, indexed):
    explanation_create(feature=indexed.features[3], text="cats on mats", method="offline")
    _, body = get(client, "/tiny/res-1/3/")
    assert '<meta property="og:title" content="Feature 3 of tiny/res-1: cats on mats">' in body
    assert '<meta property="og:description" content="cats on mats. Promotes' in body


def test_anonymous_readers_get_a_sign_in_link_for_lists(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    assert "to add this feature to a list" in body


def test_signed_in_readers_pick_one_of_their_lists(client, indexed, alice):
    FeatureList.objects.create(owner=alice, name="alice's cats")
    client.force_login(alice)
    _, body = get(client, "/tiny/res-1/3/")
    assert 'data-enhance="add-to-list"' in body
    assert "alice&#x27;s cats" in body


def test_the_page_is_not_framable_but_the_embed_is(client, indexed, settings):
    page = client.get("/tiny/res-1/3/")
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    response = client.get("/tiny/res-1/3/?embed=1")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    policy = response["Content-Security-Policy"]
    assert "frame-ancestors *" in policy and "script-src 'self'" in policy

    settings.CSP_EMBED_FRAME_ANCESTORS = ["https://blog.example.org"]
    policy = client.get("/tiny/res-1/3/?embed=1")["Content-Security-Policy"]
    assert "frame-ancestors https://blog.example.org" in policy


def test_the_embed_shows_the_parts_asked_for(client, indexed):
    _, default = get(client, "/tiny/res-1/3/?embed=1")
    assert 'class="site-header"' not in default
    assert 'data-chart="histogram"' in default and 'data-chart="examples"' in default
    assert 'data-enhance="activation-test"' not in default
    _, custom = get(client, "/tiny/res-1/3/?embed=1&plots=0&examples=0&test=1&steer=1")
    assert 'data-chart="histogram"' not in custom and 'data-chart="examples"' not in custom
    assert 'data-enhance="activation-test"' in custom
    assert "Steer with this feature" in custom


def test_the_feature_page_offers_a_copyable_embed_snippet(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    assert html.escape('<iframe src="http://testserver/tiny/res-1/3/?embed=1"') in body


def test_the_page_reads_a_bounded_number_of_queries(client, indexed, django_assert_max_num_queries):
    for f in indexed.features[3:6]:
        explanation_create(feature=f, text=f"feature {f.index}", method="offline")
    client.get("/tiny/res-1/3/")  # the vocab is then cached in this process
    with django_assert_max_num_queries(4):
        assert client.get("/tiny/res-1/4/").status_code == 200


def test_the_sae_table_reads_a_bounded_number_of_queries(
    client, indexed, django_assert_max_num_queries
):
    # 6: the table's 5, and one for what is still being computed (map, label embeddings)
    with django_assert_max_num_queries(6):
        assert client.get("/tiny/res-1/?sort=density&after=0.001~5").status_code == 200


def test_signed_in_readers_can_add_an_explanation_and_vote(client, indexed, alice):
    explanation_create(feature=indexed.features[3], text="cats", method="offline")
    client.force_login(alice)
    _, body = get(client, "/tiny/res-1/3/")
    assert (
        'data-enhance="add-explanation"'
        ' data-url="/api/v1/models/tiny/saes/res-1/features/3/explanations"' in body
    )
    assert 'data-enhance="vote"' in body


def test_anonymous_readers_see_no_explanation_forms(client, indexed):
    explanation_create(feature=indexed.features[3], text="cats", method="offline")
    _, body = get(client, "/tiny/res-1/3/")
    assert "add-explanation" not in body and 'data-enhance="vote"' not in body


def test_a_feature_of_an_sae_not_yet_indexed_says_so(client, db):
    from tests.builders import make_sae

    make_sae()
    response, body = get(client, "/tiny/res-1/3/")
    assert response.status_code == 404
    assert "has not been indexed yet" in body
    _, table = get(client, "/tiny/res-1/")
    assert "this SAE has not been indexed" in table


EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def evil(db):
    """A model whose every token is markup: feature i peaks on (and promotes) EVIL."""
    from tests.builders import build_indexed_sae, make_language_model, make_sae

    model = make_language_model(slug="evil", source="evil-source", vocab=[EVIL, "a"])
    return build_indexed_sae(sae=make_sae(model))


def test_markup_in_tokens_renders_as_text_everywhere(client, evil):
    explanation_create(feature=evil.features[2], text=EVIL, method="human")
    for url in ("/evil/res-1/2/", "/evil/res-1/2/?embed=1&test=1", "/evil/res-1/", "/"):
        body = get(client, url)[1]
        assert "<img" not in body, url
    assert "&lt;img src=x onerror=alert(1)&gt;" in get(client, "/evil/res-1/2/")[1]


def test_pages_only_answer_reads(client, indexed):
    assert client.post("/tiny/res-1/3/").status_code in (403, 405)
    assert client.head("/tiny/res-1/3/").status_code == 200


def test_vote_totals_are_shown_next_to_explanations(client, indexed, alice, bob):
    from explorer.explanations.services import vote_cast

    e = explanation_create(feature=indexed.features[3], text="cats", method="offline")
    vote_cast(user=alice, explanation_id=e.pk, value=1)
    vote_cast(user=bob, explanation_id=e.pk, value=1)
    _, body = get(client, "/tiny/res-1/3/")
    assert "· 2 votes" in body
    client.force_login(alice)
    _, signed_in = get(client, "/tiny/res-1/3/")
    assert '<span class="votes__count" data-vote-count>2</span>' in signed_in


def test_an_explanation_without_votes_shows_no_count(client, indexed):
    explanation_create(feature=indexed.features[3], text="cats", method="offline")
    _, body = get(client, "/tiny/res-1/3/")
    assert "vote" not in body.split('explanation-meta">')[1].split("</p>")[0]


def test_an_interval_uses_the_exact_share_counted_at_indexing(client, indexed):
    f = indexed.features[3]
    f.quantile_bounds = [0.0, f.max_activation / 5, f.max_activation]
    f.quantile_fractions = [0.125, 0.875]
    f.save()
    _, body = get(client, "/tiny/res-1/3/")
    assert "contains 12.5%" in body


def _run_done(sae, **options):
    from explorer.saes.models import IndexRun

    IndexRun.objects.create(
        sae=sae, corpus="demo", tokens=100, status=IndexRun.Status.DONE, options=options
    )


def test_the_examples_say_how_they_are_chosen(client, indexed):
    _, body = get(client, "/tiny/res-1/3/")
    text = html.unescape(body)
    assert (
        "Top activations are the distinct context windows with the highest maximum activation"
        in text
    )
    assert "one example per window" in text
    assert (
        "the number beside each is the window's maximum, reached at the highlighted token" in text
    )
    assert "sampled uniformly at random among those whose maximum lies in the interval" in text


def test_a_bos_left_out_of_the_statistics_is_marked_in_every_strip(client, indexed):
    _run_done(indexed.sae, prepend_bos=True, include_bos=False)
    _, body = get(client, "/tiny/res-1/3/?ctx=full")
    strips = re.findall(r'<span class="token-strip[^"]*">(.*?)</span>\s*</div>', body, re.DOTALL)
    assert strips and all(
        re.match(
            r'<span class="token [^"]*token--excluded" [^>]*title="BOS: excluded from statistics">',
            s,
        )
        for s in strips
    )
    assert body.count("token--excluded") == len(strips)
    assert "excluded from all statistics but shown with its true value" in html.unescape(body)
    assert '"bosExcluded": true' in body


def test_a_run_that_counted_bos_marks_nothing(client, indexed):
    _run_done(indexed.sae, prepend_bos=True, include_bos=True)
    _, body = get(client, "/tiny/res-1/3/?ctx=full")
    assert "token--excluded" not in body and "excluded from all statistics" not in body
