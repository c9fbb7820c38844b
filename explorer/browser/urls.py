"""The browser's pages. Included last in explorer/urls.py: `<model>/<sae>/` matches almost
anything, so every fixed prefix (api, lists, search, steer, ...) must be routed before it."""

from django.urls import path

from explorer.browser import views

app_name = "browser"

urlpatterns = [
    path("<slug:model>/", views.model_page, name="model"),
    path("<slug:model>/<slug:sae>/", views.sae_page, name="sae"),
    path("<slug:model>/<slug:sae>/map.json", views.sae_map_json, name="sae_map"),
    path("<slug:model>/<slug:sae>/progress.json", views.sae_progress_json, name="sae_progress"),
    path("<slug:model>/<slug:sae>/pending.json", views.sae_pending_json, name="sae_pending"),
    path("<slug:model>/<slug:sae>/random/", views.random_feature, name="random"),
    path("<slug:model>/<slug:sae>/<int:index>/", views.feature_page, name="feature"),
    path("<slug:model>/<slug:sae>/<str:index>/", views.bad_index, name="bad_index"),
]
