"""Feature importance under ablation: one row per feature, written by
workers/importance.py and read by the feature page, the SAE overview and the API.

Importable without torch (the web process imports it).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from explorer.saes.models import Feature, JobStatus


class FeatureImportance(models.Model):
    """The next-token loss increase when a feature is ablated on its stored example windows
    (zero / mean / resample, SAE error term kept; workers/engine/importance.py), and the next
    tokens whose probability moves most under zero ablation. Also the state of the job that
    computes it, so a page can show progress."""

    Status = JobStatus

    feature = models.OneToOneField(Feature, on_delete=models.CASCADE, related_name="importance")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1 while running
    error = models.TextField(blank=True)
    # Mean CE(ablated) − CE(clean) over every next-token prediction in the contexts, nats;
    # null until computed (or when the feature has no contexts).
    loss_zero = models.FloatField(null=True, blank=True)
    loss_mean = models.FloatField(null=True, blank=True)
    loss_resample = models.FloatField(null=True, blank=True)
    loss_clean = models.FloatField(null=True, blank=True)
    n_contexts = models.PositiveIntegerField(default=0)
    n_predictions = models.PositiveIntegerField(default=0)
    # Zero ablation: mean change in next-token probability, largest first.
    up_token_ids = ArrayField(models.IntegerField(), default=list)
    up_values = ArrayField(models.FloatField(), default=list)
    down_token_ids = ArrayField(models.IntegerField(), default=list)
    down_values = ArrayField(models.FloatField(), default=list)
    requested = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "feature importance"

    def __str__(self) -> str:
        return f"{self.feature} importance ({self.status})"
