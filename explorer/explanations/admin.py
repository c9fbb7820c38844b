from django.contrib import admin

from explorer.explanations.models import Explanation, Vote


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = ("feature", "text", "method", "score", "author", "created")
    list_filter = ("method",)
    search_fields = ("text",)
    raw_id_fields = ("feature", "author")  # millions of features: never a select box


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("explanation", "user", "value", "created")
    raw_id_fields = ("explanation", "user")
