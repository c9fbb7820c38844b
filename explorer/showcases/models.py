"""Steering showcases: features whose steering is striking, found by a measured criterion
(workers/engine/showcases.py) after an SAE is indexed, and shown on the home page as links to
live steering. Importable without torch (the web process imports it).
"""

from __future__ import annotations

from django.db import models

from explorer.saes.models import SAE


class SteeringShowcase(models.Model):
    """One feature of an SAE, steered with `strength` (raw, as in the steering page's URL) on
    `prompt`. `score` is the rise in log-probability of the feature's top-logit tokens under
    steering (nats, mean over the fixed prompts); `fluency_drop` (nats per token) and
    `distinct` (distinct / all tokens) are the steered text's fluency figures. `text` and
    `default_text` are the steered and unsteered continuations as scored (model output:
    untrusted, escaped wherever shown); `label` is the feature's best explanation then."""

    sae = models.ForeignKey(SAE, on_delete=models.CASCADE, related_name="showcases")
    feature_index = models.PositiveIntegerField()
    rank = models.PositiveSmallIntegerField()  # 0 = largest score of the SAE
    prompt = models.TextField()
    strength = models.FloatField()
    score = models.FloatField()
    fluency_drop = models.FloatField()
    distinct = models.FloatField()
    text = models.TextField()
    default_text = models.TextField()
    label = models.TextField(blank=True)
    # The sampling the text was scored with: the showcase's link asks the page for the same.
    settings = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("sae_id", "rank")
        constraints = [  # noqa: RUF012 (Django Meta convention)
            models.UniqueConstraint(fields=("sae", "rank"), name="showcase_rank_unique_per_sae")
        ]

    def __str__(self) -> str:
        return f"{self.sae} #{self.feature_index} × {self.strength:g}"
