from django.urls import path

from instances import views

app_name = "instances"

urlpatterns = [
    path("", views.instance_list, name="instance-list"),
    path("<int:server_id>/", views.instance_detail, name="instance-detail"),
]
