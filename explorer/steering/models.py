"""Steering results (the cache and the permalinks) and user steering vectors (DESIGN.md §4).

Importable without torch: vectors are stored as plain float arrays.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from explorer.saes.models import SAE, LanguageModel


def new_public_id() -> str:
    """12 url-safe characters: permalinks that cannot be enumerated."""
    return secrets.token_urlsafe(9)


class SteeringResult(models.Model):
    """One finished generation: both rows, keyed by a hash of every parameter that decides it.

    `request` is the normalised request (the hash input minus the engine version); it restores
    the whole steering panel from a permalink.
    """

    id = models.CharField(primary_key=True, max_length=16, default=new_public_id, editable=False)
    key = models.CharField(max_length=64, unique=True)  # sha256 hex of the canonical request
    model = models.ForeignKey(
        LanguageModel, on_delete=models.CASCADE, related_name="steering_results"
    )
    sae = models.ForeignKey(
        SAE, on_delete=models.CASCADE, null=True, blank=True, related_name="steering_results"
    )
    request = models.JSONField()
    engine_version = models.PositiveIntegerField()
    default_text = models.TextField()
    default_tokens = ArrayField(models.IntegerField(), default=list)
    steered_text = models.TextField()
    steered_tokens = ArrayField(models.IntegerField(), default=list)
    # {"default"|"steered": streams.row_alternatives(...)}: each token's probability and the
    # likeliest tokens at its step, shown on hover; {} for results stored before them.
    alternatives = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"steering result {self.pk}"


class SteeringVector(models.Model):
    """A user's steering direction at an SAE's hook, e.g. built by contrastive activation
    addition from (prompt, positive, negative) pairs. `features` lists the SAE features it
    aligns with: [{"index", "cosine", "weight"}], best first."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    sae = models.ForeignKey(SAE, on_delete=models.CASCADE, related_name="steering_vectors")
    hook_name = models.CharField(max_length=200)
    label = models.CharField(max_length=200)
    method = models.CharField(max_length=20, default="caa")
    pairs = models.JSONField(default=list)  # [{"prompt", "positive", "negative"}]: provenance
    vector = ArrayField(models.FloatField(), default=list)  # [d_in]; empty until ready
    norm = models.FloatField(default=0.0)
    features = models.JSONField(default=list)
    residual_fraction = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="steering_vectors",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.label} ({self.sae})"
