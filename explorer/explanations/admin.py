from django.contrib import admin

from explorer.explanations.models import ExplainJob, Explanation, Vote


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = (
        "feature",
        "text",
        "method",
        "score",
        "score_method",
        "score_sample_size",
        "author",
        "created",
    )
    list_filter = ("method", "score_method")
    search_fields = ("text",)
    raw_id_fields = ("feature", "author")  # millions of features: never a select box


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("explanation", "user", "value", "created")
    raw_id_fields = ("explanation", "user")


@admin.register(ExplainJob)
class ExplainJobAdmin(admin.ModelAdmin):
    """The failure record: what failed, why, and whether `manage.py explain_retry` will retry it."""

    list_display = (
        "id",
        "feature",
        "kind",
        "status",
        "reason",
        "retryable",
        "attempts",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "created",
    )
    list_filter = ("status", "kind", "retryable", "model")
    raw_id_fields = ("feature", "explanation", "requested_by")
