from django.urls import path

from snapshots import views

app_name = "snapshots"

urlpatterns = [
    path("", views.snapshot_list, name="snapshot-list"),
    path("project/<id:project_id>/", views.snapshot_list, name="snapshot-project-list"),
    path("create/<id:server_id>/", views.snapshot_create, name="snapshot-create"),
    path(
        "create/<id:server_id>/check-name/", views.snapshot_name_check, name="snapshot-name-check"
    ),
    path("create-many/", views.snapshot_create_many, name="snapshot-create-many"),
    path("delete/", views.snapshot_delete, name="snapshot-delete"),
    path("<id:snapshot_id>/verify/", views.snapshot_verify, name="snapshot-verify"),
]
