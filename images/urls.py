from django.urls import path

from images import views

app_name = "images"

urlpatterns = [
    path("", views.image_list, name="image-list"),
    path("<id:image_id>/copy/", views.image_copy, name="image-copy"),
]
