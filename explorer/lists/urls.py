from django.urls import path

from explorer.lists import views

app_name = "lists"

urlpatterns = [
    path("lists/", views.list_index, name="index"),
    path("lists/<uuid:list_id>/", views.list_detail, name="detail"),
    path("lists/<uuid:list_id>/items/<int:item_id>/", views.item_edit, name="item_edit"),
]
