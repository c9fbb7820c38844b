"""workers/showcases.py: steering showcases of the demo SAE computed on a real worker (`index`
queue), by the management command in-process, and after indexing; over the demo model."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from explorer.explanations.models import Explanation
from explorer.saes.models import Feature
from explorer.showcases import services
from explorer.showcases.models import SteeringShowcase
from tests.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Demo SAE features with their statistics over demo text (max activation, density, top logit
# tokens restricted to none): 318 pushes " General"/" resolution"-like tokens, 1330 and 1486
# everyday words; 173 pushes digits and only ever babbles numbers (it never qualifies).
FEATURES = {
    318: (6.38, 0.105, [2852, 1001, 2381, 3915, 1498, 2368, 3871, 3323, 994, 4012]),
    1330: (6.91, 0.258, [1186, 250, 3625, 216, 145, 200, 138, 146, 185, 190]),
    1486: (5.36, 0.230, [2978, 1186, 3687, 447, 657, 2272, 642, 2264, 2964, 322]),
    173: (13.13, 0.103, [16, 17, 20, 23, 18, 19, 24, 22, 21, 25]),
}
PROMPTS = ("I think that", "The best thing about the city is", "Yesterday we went to")


@pytest.fixture
def demo_sae(demo_rows):
    """The demo SAE with FEATURES as its only live features (plus a dead one) and an
    explanation for feature 318."""
    _, sae = demo_rows
    rows = [
        Feature(
            sae=sae,
            index=i,
            max_activation=mx,
            density=density,
            top_logit_ids=ids,
            top_logit_values=[1.0 - k / 20 for k in range(len(ids))],
        )
        for i, (mx, density, ids) in FEATURES.items()
    ]
    rows.append(Feature(sae=sae, index=7, dead=True))
    made = {f.index: f for f in Feature.objects.bulk_create(rows)}
    Explanation.objects.create(feature=made[318], text="United Nations resolutions", method="human")
    return sae


def _check(showcases: list[SteeringShowcase]) -> None:
    assert showcases, "no showcase stored"
    assert [s.rank for s in showcases] == list(range(len(showcases)))
    assert [s.score for s in showcases] == sorted((s.score for s in showcases), reverse=True)
    for s in showcases:
        assert s.feature_index in FEATURES and s.feature_index != 173
        assert s.prompt in PROMPTS
        assert s.score >= 1.0 and s.fluency_drop <= 1.0 and s.distinct >= 0.6
        assert s.text and s.text != s.default_text
        assert s.settings == {"temperature": 0.7, "top_p": 0.95, "seed": 0, "max_new_tokens": 24}


def test_the_task_stores_showcases_on_the_index_queue(demo_sae, celery_worker_proc):
    services.showcases_schedule(sae_id=demo_sae.pk)
    wait_until(lambda: SteeringShowcase.objects.filter(sae=demo_sae).exists(), timeout=300)
    showcases = list(SteeringShowcase.objects.filter(sae=demo_sae))
    _check(showcases)
    labels = {s.feature_index: s.label for s in showcases}
    assert labels.get(318, "United Nations resolutions") == "United Nations resolutions"


def test_the_command_computes_them_in_process_and_says_how_long_it_took(demo_sae, settings, capsys):
    settings.SHOWCASE_CANDIDATES = 3  # the budget: 173 (lowest density × logit) is not scored
    call_command("showcases", "demo/demo", now=True)
    out = capsys.readouterr().out
    assert "demo/demo:" in out and "from 3 candidates in" in out
    _check(list(SteeringShowcase.objects.filter(sae=demo_sae)))


def test_a_recompute_replaces_the_old_showcases(demo_sae, settings):
    from workers.showcases import compute_showcases_for

    settings.SHOWCASE_CANDIDATES = 1
    old = services.ShowcaseRow(5, "x", 1.0, 9.0, 0.0, 1.0, "t", "d")
    services.showcases_replace(sae=demo_sae, rows=[old, old])
    stored = compute_showcases_for(demo_sae)
    assert SteeringShowcase.objects.filter(sae=demo_sae).count() == stored <= 1
    assert not SteeringShowcase.objects.filter(sae=demo_sae, feature_index=5).exists()


def test_an_sae_without_live_features_keeps_no_showcases(demo_rows):
    from workers.showcases import compute_showcases_for

    _, sae = demo_rows
    Feature.objects.create(sae=sae, index=3, dead=True)
    services.showcases_replace(sae=sae, rows=[services.ShowcaseRow(3, "x", 1, 1, 0, 1, "t", "d")])
    assert compute_showcases_for(sae) == 0
    assert not SteeringShowcase.objects.filter(sae=sae).exists()


def test_a_gone_sae_is_skipped():
    from workers.showcases import compute_showcases

    assert compute_showcases.run(sae_id=987654) == {"sae": 987654, "skipped": True}


def test_indexing_an_sae_recomputes_its_showcases(celery_worker_proc, tmp_path):
    from workers.registration import sae_register_from_specs

    sae = sae_register_from_specs(model_spec="demo", sae_spec="demo").sae
    stale = services.ShowcaseRow(5, "stale", 1.0, 99.0, 0.0, 1.0, "t", "d")
    services.showcases_replace(sae=sae, rows=[stale])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(
            f"{p} the city council passed a resolution on the river bank in {y}."
            for p in PROMPTS
            for y in range(1950, 1990)
        )
    )
    call_command("index_sae", "demo/demo", corpus=str(corpus), tokens=2000, context=32)
    wait_until(
        lambda: not SteeringShowcase.objects.filter(sae=sae, prompt="stale").exists(),
        timeout=300,
    )
