"""Named lists of features with a note per feature: public (anyone with the URL or the list
index sees it) or private (only its owner). The id is a random UUID, so list URLs cannot be
enumerated."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from explorer.saes.models import Feature


class FeatureList(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feature_lists"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    public = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated",)
        indexes = [  # noqa: RUF012 (Django Meta convention)
            models.Index(fields=["owner", "-updated"], name="featurelist_owner_updated"),
            models.Index(
                fields=["-updated"],
                condition=models.Q(public=True),
                name="featurelist_public_updated",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/lists/{self.id}/"


class FeatureListItem(models.Model):
    """One feature on a list, at `position` (0 first), with the owner's note."""

    feature_list = models.ForeignKey(FeatureList, on_delete=models.CASCADE, related_name="items")
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="list_items")
    note = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("feature_list", "position", "id")
        constraints = [  # noqa: RUF012
            models.UniqueConstraint(
                fields=["feature_list", "feature"], name="feature_once_per_list"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature_list}: {self.feature}"
