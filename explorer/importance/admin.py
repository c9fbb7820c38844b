from django.contrib import admin

from explorer.importance.models import FeatureImportance


@admin.register(FeatureImportance)
class FeatureImportanceAdmin(admin.ModelAdmin):
    list_display = ("feature", "status", "loss_zero", "loss_mean", "loss_resample", "computed_at")
    list_filter = ("status",)
    raw_id_fields = ("feature",)
