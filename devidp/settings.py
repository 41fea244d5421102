"""Settings of the loopback identity provider (never the portal's)."""

import os
from pathlib import Path

DEVIDP_DIR = Path(
    os.environ.get("DEVIDP_DIR", Path(__file__).resolve().parent.parent / "var" / "devidp")
)
DEVIDP_CONFIG = Path(os.environ.get("DEVIDP_CONFIG", DEVIDP_DIR / "config.json"))

DEBUG = False
SECRET_KEY = "devidp-loopback-only-not-a-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before oidc_provider: its templates (login, consent) come first.
    "devidp",
    "oidc_provider",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "devidp.config.config_sync_middleware",
]

# Cookies are per host, not per port: on 127.0.0.1 the portal's "sessionid" and
# "csrftoken" would be overwritten by the provider's (and the other way round).
SESSION_COOKIE_NAME = "devidp_sessionid"
CSRF_COOKIE_NAME = "devidp_csrftoken"

ROOT_URLCONF = "devidp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DEVIDP_DIR / "devidp.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Loopback users with loopback passwords: hashing them slowly buys nothing.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
LOGIN_URL = "/login/"

# The claims: names and email from the config file, and eduperson_entitlement as
# its own scope, as LS Login releases it.
OIDC_USERINFO = "devidp.claims.userinfo"
OIDC_EXTRA_SCOPE_CLAIMS = "devidp.claims.EntitlementScopeClaims"
OIDC_IDTOKEN_EXPIRE = 600
OIDC_CODE_EXPIRE = 120
# The provider asks for consent every time unless the client says otherwise (config).
OIDC_SKIP_CONSENT_EXPIRE = 0

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
