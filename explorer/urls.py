from django.contrib import admin
from django.urls import include, path, re_path

from explorer.api.api import api
from explorer.api.unmatched import unmatched

urlpatterns = [
    path("", include("explorer.core.urls")),
    path("accounts/", include("explorer.accounts.urls")),
    # The API's root and anything no endpoint matches answer JSON, never a browser page.
    path("api/v1/", unmatched),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", unmatched),
    path("admin/", admin.site.urls),
    # Fixed prefixes first: the browser's /<model>/<sae>/ patterns catch everything else.
    path("", include("explorer.lists.urls")),
    path("", include("explorer.search.urls")),
    path("", include("explorer.explanations.urls")),
    path("", include("explorer.steering.urls")),
    path("", include("explorer.browser.urls")),
]

# A failure because Redis or PostgreSQL is unreachable becomes a 503 (explorer/core/outages.py).
handler500 = "explorer.core.views.server_error"
