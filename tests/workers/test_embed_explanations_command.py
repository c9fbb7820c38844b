"""manage.py embed_explanations: embeds what lacks an embedding, here (--now) or on a worker."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from explorer.explanations.models import Explanation
from explorer.search.models import ExplanationEmbedding
from tests.builders import build_indexed_sae

pytestmark = pytest.mark.django_db


@pytest.fixture
def explained():
    built = build_indexed_sae(d_sae=12, examples_per_feature=1)
    for index, text in ((3, "rivers"), (4, "banks")):
        Explanation.objects.create(feature=built.features[index], text=text, method="offline")
    return built


def test_now_embeds_in_this_process_and_says_how_many(explained):
    out = io.StringIO()
    call_command("embed_explanations", "tiny/res-1", now=True, stdout=out)
    assert out.getvalue().strip() == "embedded 2 explanation(s)"
    assert ExplanationEmbedding.objects.count() == 2
    out = io.StringIO()
    call_command("embed_explanations", now=True, stdout=out)  # nothing left
    assert out.getvalue().strip() == "embedded 0 explanation(s)"


def test_an_unknown_sae_is_a_command_error(explained):
    with pytest.raises(CommandError, match="unknown SAE"):
        call_command("embed_explanations", "tiny/nope", now=True)
