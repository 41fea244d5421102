from django.urls import path

from workshops import views

app_name = "workshops"

urlpatterns = [
    path("", views.workshop_index, name="workshop-list"),
    path("<id:workshop_id>/", views.workshop_detail, name="workshop-detail"),
    path("<id:workshop_id>/participants.csv", views.workshop_download, name="workshop-csv"),
    path("<id:workshop_id>/handout/", views.workshop_handout, name="workshop-handout"),
    path("<id:workshop_id>/retry/", views.workshop_retry_view, name="workshop-retry"),
    path("<id:workshop_id>/add/", views.workshop_add_view, name="workshop-add"),
    path(
        "<id:workshop_id>/instructions/",
        views.workshop_instructions_view,
        name="workshop-instructions",
    ),
    path("<id:workshop_id>/access/", views.workshop_access_view, name="workshop-access"),
    path("<id:workshop_id>/park/", views.workshop_park_view, name="workshop-park"),
    path("<id:workshop_id>/resume/", views.workshop_resume_view, name="workshop-resume"),
    path("<id:workshop_id>/teardown/", views.workshop_teardown_view, name="workshop-teardown"),
]
