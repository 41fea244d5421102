from django.urls import path

from instances import launch_views, park_views, views

app_name = "instances"

urlpatterns = [
    path("", views.instance_list, name="instance-list"),
    path("new/", launch_views.instance_new, name="instance-new"),
    path("delete/", views.instance_delete, name="instance-delete"),
    path("park/", park_views.instance_park_selected, name="instance-park-many"),
    path("resume/", park_views.instance_resume_selected, name="instance-resume-many"),
    path("<id:server_id>/", views.instance_detail, name="instance-detail"),
    path("<id:server_id>/row/", views.instance_row, name="instance-row"),
    path("<id:server_id>/stop/", views.instance_stop, name="instance-stop"),
    path("<id:server_id>/start/", views.instance_start, name="instance-start"),
    path("<id:server_id>/park/", park_views.instance_park, name="instance-park"),
    path("<id:server_id>/resume/", park_views.instance_resume, name="instance-resume"),
    path("launches/<id:job_id>/retry/", views.launch_retry, name="launch-retry"),
    path(
        "launches/<id:job_id>/delete-failed/",
        views.launch_failed_delete,
        name="launch-failed-delete",
    ),
]
