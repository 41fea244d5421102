from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    # The issuer is http://host:port/oidc (LS Login's is https://login.aai.lifescience-ri.eu/oidc/).
    path("oidc/", include("oidc_provider.urls", namespace="oidc_provider")),
]
