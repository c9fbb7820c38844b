"""`{% importance_panel feature model_slug sae_slug %}`: the feature page's importance card
(numbers when known, a Compute button and a progress bar; frontend/src/importance wires it).

It adds no query to the page: when the view loaded the row with the feature
(`select_related("importance")`) the numbers are rendered here; otherwise the card says
`data-status="unknown"` and the script reads them from the API on load.
"""

from __future__ import annotations

from django import template
from django.core.exceptions import ObjectDoesNotExist

from explorer.importance import selectors
from explorer.saes.models import Feature

register = template.Library()


@register.inclusion_tag("importance/_feature_importance.html")
def importance_panel(feature: Feature, model_slug: str, sae_slug: str) -> dict:
    endpoint = f"/api/v1/models/{model_slug}/saes/{sae_slug}/features/{feature.index}/importance"
    if not Feature.importance.related.is_cached(feature):
        return {
            "feature": feature,
            "imp": {"status": "unknown", "progress": 0.0},
            "done": False,
            "pending": False,
            "endpoint": endpoint,
        }
    try:
        row = feature.importance
    except ObjectDoesNotExist:
        row = None
    data = selectors.importance_dict(feature=feature, row=row)
    return {
        "feature": feature,
        "imp": data,
        "done": data["status"] == "done",
        "pending": data["status"] in ("queued", "running"),
        "endpoint": endpoint,
    }
