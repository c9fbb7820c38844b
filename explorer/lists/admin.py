from django.contrib import admin

from explorer.lists.models import FeatureList, FeatureListItem


class FeatureListItemInline(admin.TabularInline):
    model = FeatureListItem
    raw_id_fields = ("feature",)  # millions of features: never a select box
    extra = 0


@admin.register(FeatureList)
class FeatureListAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "public", "updated")
    list_filter = ("public",)
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)
    inlines = (FeatureListItemInline,)
