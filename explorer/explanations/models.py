"""Explanations of features (offline heuristics, LLM explainers, people) and votes on them.

One feature has any number of explanations; pages and search show the best one (highest
score, then newest; see selectors.best_explanations). Search matches explanation text with
pg_trgm, through the GIN index below.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models

from explorer.saes.models import Feature


class Explanation(models.Model):
    """A short text saying what a feature responds to.

    `method` names where it came from: "offline" (a heuristic from the indexed examples),
    "llm:<model>" (an LLM explainer; the model id follows the colon) or "human".
    """

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="explanations")
    text = models.TextField()
    method = models.CharField(max_length=200)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="explanations",
    )
    # How well the text predicts activations (higher is better); null until scored.
    score = models.FloatField(null=True, blank=True)
    score_method = models.CharField(
        max_length=200, blank=True
    )  # "detection:offline" or "detection:llm:<model>"
    # Contexts the score was measured on (activating + non-activating). Nullable, like `edited`,
    # because indexing inserts offline labels with raw SQL that names only the older columns.
    score_sample_size = models.PositiveIntegerField(null=True, blank=True)
    edited = models.DateTimeField(null=True, blank=True)  # last edit by its author
    created = models.DateTimeField(auto_now_add=True)
    # Full-text search (English stemming) of `text`, kept by PostgreSQL: whole-word and prefix
    # queries match through its GIN index without computing a similarity for every row.
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ("feature", "-score", "-created")
        indexes = [  # noqa: RUF012 (Django Meta convention)
            # Trigram search (typos, word pieces: `<%`, `%`, ILIKE use it).
            GinIndex(fields=["text"], opclasses=["gin_trgm_ops"], name="explanation_text_trgm"),
            GinIndex(fields=["search_vector"], name="explanation_search_vector"),
            # Best explanation of a page of features: one index range per feature.
            models.Index(fields=["feature", "-score", "-created"], name="explanation_feature_best"),
        ]

    def __str__(self) -> str:
        return f"{self.feature}: {self.text[:60]}"


class Vote(models.Model):
    """One user's +1 or -1 on one explanation; a second vote is refused (retract it first)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="explanation_votes"
    )
    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="votes")
    value = models.SmallIntegerField()
    created = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [  # noqa: RUF012
            models.UniqueConstraint(
                fields=["user", "explanation"], name="vote_once_per_user_and_explanation"
            ),
            models.CheckConstraint(
                condition=models.Q(value__in=(-1, 1)), name="vote_value_is_plus_or_minus_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.value:+d} on {self.explanation_id}"


class ExplainJob(models.Model):
    """One unit of explanation work for one feature, with its outcome: the failure record.

    kind "explain" asks an LLM endpoint for an explanation of `feature` (then scores it);
    kind "score" scores `explanation` (the LLM judge when `base_url` is set, else the offline
    proxy). A failed job keeps its `reason` and never leaves a made-up explanation or score
    behind; `retryable` failures (endpoint down, timeout, 429/5xx, malformed reply) are queued
    again by `manage.py explain_retry` (services.explain_jobs_retry). The API key is never
    stored here: workers read it from settings.
    """

    class Kind(models.TextChoices):
        EXPLAIN = "explain"
        SCORE = "score"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="explain_jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    explanation = models.ForeignKey(
        Explanation, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )  # the result (explain) or the target (score)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    base_url = models.CharField(max_length=500, blank=True)  # "" = offline (score jobs only)
    model = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(
        default=0
    )  # runs of this job (each may retry HTTP calls)
    reason = models.TextField(blank=True)  # why the last run failed
    retryable = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)  # summed over every call of every run
    completion_tokens = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="explain_jobs",
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [  # noqa: RUF012
            models.Index(fields=["status", "kind"], name="explainjob_status_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.feature} {self.status}"
