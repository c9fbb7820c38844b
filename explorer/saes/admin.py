"""Read-mostly admin: rows are written by add_sae and indexing, not edited by hand.

Examples are not listed: they live in per-SAE partitions with no primary key of their own
(see models.Example); the feature pages show them.
"""

from django.contrib import admin

from explorer.saes.models import (
    SAE,
    Feature,
    IndexRun,
    IndexShard,
    LanguageModel,
    SAEEvaluation,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewing and deleting only; adding or editing by hand would bypass the services' checks."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LanguageModel)
class LanguageModelAdmin(ReadOnlyAdmin):
    list_display = ("slug", "source", "architecture", "d_model", "n_layers", "n_ctx", "created")
    search_fields = ("slug", "source")
    # The vocab is tens of thousands of strings: never rendered.
    exclude = ("vocab",)


@admin.register(SAE)
class SAEAdmin(ReadOnlyAdmin):
    list_display = ("slug", "model", "hook_name", "d_in", "d_sae", "architecture", "created")
    list_filter = ("architecture", "model")
    search_fields = ("slug", "source", "hook_name", "model__slug")
    list_select_related = ("model",)


@admin.register(Feature)
class FeatureAdmin(ReadOnlyAdmin):
    list_display = ("sae", "index", "density", "max_activation", "mean_activation", "dead")
    list_filter = ("dead",)
    search_fields = ("sae__slug", "=index")
    list_select_related = ("sae__model",)
    show_full_result_count = False  # COUNT(*) over millions of features on every page view
    raw_id_fields = ("sae",)


class IndexShardInline(admin.TabularInline):
    model = IndexShard
    fields = (
        "index",
        "status",
        "tokens_done",
        "tokens_total",
        "attempts",
        "worker",
        "seconds",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(IndexRun)
class IndexRunAdmin(ReadOnlyAdmin):
    inlines = (IndexShardInline,)
    list_display = (
        "pk",
        "sae",
        "corpus",
        "status",
        "tokens_done",
        "tokens_total",
        "shards",
        "created",
        "finished",
    )
    list_filter = ("status",)
    search_fields = ("sae__slug", "corpus", "error")
    list_select_related = ("sae__model",)


@admin.register(SAEEvaluation)
class SAEEvaluationAdmin(ReadOnlyAdmin):
    list_display = ("pk", "sae", "corpus", "status", "tokens", "seconds", "created", "finished")
    list_filter = ("status",)
    search_fields = ("sae__slug", "corpus", "error")
    list_select_related = ("sae__model",)
