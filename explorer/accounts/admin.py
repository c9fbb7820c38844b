from django.contrib import admin

from explorer.accounts.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    readonly_fields = ("prefix", "digest", "created", "last_used")
    search_fields = ("name", "user__username", "prefix")
