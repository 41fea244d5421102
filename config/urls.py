from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from operations import sign_in, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="instances:instance-list"), name="home"),
    path("login/", sign_in.LoginView.as_view(), name="login"),
    path("logout/", sign_in.LogoutView.as_view(), name="logout"),
    # The identity provider's sign-in; register /oidc/callback/ with the provider.
    path("oidc/authenticate/", sign_in.SignInView.as_view(), name="oidc-sign-in"),
    path("oidc/callback/", sign_in.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<id:job_id>/", views.job_detail, name="job-detail"),
    path("profile/keys/", views.profile_keys, name="profile-keys"),
    path(
        "profile/keys/<id:key_id>/default/", views.profile_key_default, name="profile-key-default"
    ),
    path("profile/keys/<id:key_id>/delete/", views.profile_key_delete, name="profile-key-delete"),
    path("preferences/page-size/", views.page_size_set, name="page-size-set"),
    path("instances/", include("instances.urls")),
    path("images/", include("images.urls")),
    path("snapshots/", include("snapshots.urls")),
    path("workshops/", include("workshops.urls")),
    # Django's set_language (POST): the language switch in the header.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
handler400 = "operations.views.bad_request"
