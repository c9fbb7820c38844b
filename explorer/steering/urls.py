from django.urls import path

from explorer.steering import views

app_name = "steering"

urlpatterns = [
    path("steer/<str:result_id>/", views.permalink, name="permalink"),
    path("<slug:model>/steer/", views.steer_page, name="steer"),
]
