"""The model page: one table comparing the model's SAEs, metrics included, sortable."""

from __future__ import annotations

import re

import pytest

from tests.builders import make_evaluation, make_sae

pytestmark = pytest.mark.django_db


def test_the_table_compares_every_sae_with_links_and_sortable_metric_headers(client, indexed):
    other = make_sae(indexed.sae.model, slug="res-2", source="other")
    make_evaluation(indexed.sae, loss_recovered=0.5)
    body = client.get("/tiny/").content.decode()
    table = body[body.index('<table class="sae-compare"') : body.index("</table>")]
    assert 'data-enhance="sortable-table"' in table
    headers = re.findall(r'<th scope="col"[^>]*data-sort="(\w+)"[^>]*>([^<]+)</th>', table)
    labels = [label for _, label in headers]
    assert labels[:5] == ["SAE", "Hook", "Architecture", "Features", "Live"]
    assert {"Loss recovered", "Explained variance", "L0", "KL divergence"} <= set(labels)
    assert '<a href="/tiny/res-1/">res-1</a>' in table
    assert f'<a href="/tiny/{other.slug}/">{other.slug}</a>' in table
    cells = dict(re.findall(r'data-metric="loss_recovered" data-value="([^"]*)">([^<]+)<', table))
    assert cells == {"0.5": "50%", "": "–"}  # res-1 evaluated, res-2 not yet


def test_the_page_has_no_inline_script(client, indexed):
    body = client.get("/tiny/").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)
