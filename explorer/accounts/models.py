from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """An API key for the JSON API. Only a SHA-256 digest of the key is stored.

    The plain key is shown once, when created (services.api_key_create). A fast unsalted hash
    is right here, unlike passwords: keys are 256 random bits (no dictionary to attack), and
    authentication must find the row by digest in one indexed lookup.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    # First characters of the key, shown in lists so users can tell keys apart.
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked is None
