from django.contrib import admin

from explorer.accounts.forms import AdminSignInForm
from explorer.accounts.models import ApiKey

# The admin's sign-in counts against the same limits as the site's (explorer/accounts/throttle.py).
admin.site.login_form = AdminSignInForm


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    readonly_fields = ("prefix", "digest", "created", "last_used")
    search_fields = ("name", "user__username", "prefix")
