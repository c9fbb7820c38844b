from django.contrib import admin
from django.urls import include, path

from explorer.api.api import api

urlpatterns = [
    path("", include("explorer.core.urls")),
    path("accounts/", include("explorer.accounts.urls")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    # Fixed prefixes first: the browser's /<model>/<sae>/ patterns catch everything else.
    path("", include("explorer.lists.urls")),
    path("", include("explorer.search.urls")),
    path("", include("explorer.explanations.urls")),
    path("", include("explorer.steering.urls")),
    path("", include("explorer.browser.urls")),
]
