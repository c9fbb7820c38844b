from django.contrib import admin

from explorer.showcases.models import SteeringShowcase


@admin.register(SteeringShowcase)
class SteeringShowcaseAdmin(admin.ModelAdmin):
    list_display = ("sae", "rank", "feature_index", "strength", "score", "fluency_drop", "created")
    list_filter = ("sae",)
    raw_id_fields = ("sae",)
