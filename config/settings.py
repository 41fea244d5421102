"""One settings module, configured by environment variables (12-factor).

Every variable is documented in README.md. Defaults are for a developer machine;
production sets SECRET_KEY, DEBUG=0, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.environ.get(name, default))


def envfloat(name: str, default: str) -> float:
    return float(os.environ.get(name, default))


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless set: `make run` sets DEBUG=1 for the demo, and the tests' settings
# (config/settings_test.py) default to it.
DEBUG = envbool("DEBUG", "0")
# The fallback key only exists so a developer machine starts without set-up;
# a production process refuses to start without its own key.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off (DEBUG=1 for a demo)")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# Local state of `make run` (SQLite file, Redis, devcloud data) lives here.
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "axes",
    "csp",
    "portal",
    "images",
    "instances",
    "snapshots",
    "workshops",
    # On top of them all: the worker's tasks, the sync and watcher, the job pages.
    "operations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the cookie the switch in the header sets, else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "portal.http.nul_refusing_middleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user's language, kept for the mails workers write to them.
    "portal.preferences.language_remembering_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username+IP is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's, but for PORTAL_LOCAL_LOGIN (below).
    "portal.oidc.LocalPasswordBackend",
    # The identity provider's sign-in (callback only; nothing while PORTAL_OIDC_ENABLED is off).
    "portal.oidc.ProviderBackend",
]

# --- Sign-in with the facility's OpenID Connect provider (mozilla-django-oidc) ------
# Authorization code flow with PKCE; state and nonce checked. Users are created at
# their first sign-in, keyed by the provider's `sub` (never matched by email), and
# their memberships follow the provider's claim at every sign-in (portal.oidc).
PORTAL_OIDC_ENABLED = envbool("PORTAL_OIDC_ENABLED", "0")
PORTAL_OIDC_PROVIDER_NAME = os.environ.get("PORTAL_OIDC_PROVIDER_NAME", "LS Login")
# The endpoints are read from the issuer's /.well-known/openid-configuration once per
# process, at the first sign-in (never at start-up: with the provider down, the portal
# and its local login still start); set them explicitly to skip that.
PORTAL_OIDC_ISSUER = os.environ.get("PORTAL_OIDC_ISSUER", "").rstrip("/")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("PORTAL_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("PORTAL_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("PORTAL_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("PORTAL_OIDC_JWKS_ENDPOINT", "")
PORTAL_OIDC_END_SESSION_ENDPOINT = os.environ.get("PORTAL_OIDC_END_SESSION_ENDPOINT", "")
OIDC_RP_CLIENT_ID = os.environ.get("PORTAL_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("PORTAL_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = os.environ.get("PORTAL_OIDC_SCOPES", "openid profile email eduperson_entitlement")
OIDC_RP_SIGN_ALGO = os.environ.get("PORTAL_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
# Kept in the session for the provider's sign-out (id_token_hint).
OIDC_STORE_ID_TOKEN = True
OIDC_OP_LOGOUT_URL_METHOD = "portal.oidc.provider_logout_url"
# Seconds the portal waits for the provider (token, userinfo, keys, discovery).
OIDC_TIMEOUT = envfloat("PORTAL_OIDC_TIMEOUT", "10")
# Which claim says who belongs to which project, and how to read its values: a regex
# with the named groups `project` (a portal project's name: the projects of that name
# at every site) and optionally `role` (admin or member; member when absent).
PORTAL_OIDC_MEMBERSHIP_CLAIM = os.environ.get(
    "PORTAL_OIDC_MEMBERSHIP_CLAIM", "eduperson_entitlement"
)
PORTAL_OIDC_MEMBERSHIP_PATTERN = os.environ.get(
    "PORTAL_OIDC_MEMBERSHIP_PATTERN",
    r"^urn:geant:denbi\.de:group:(?P<project>[A-Za-z0-9_.-]+)(?::(?P<role>admin|member))?#.*$",
)
# Who may still sign in with a local password: all, staff (is_staff or superuser: the
# break-glass admins) or off. Accounts made by the provider have no password anyway.
PORTAL_LOCAL_LOGIN = os.environ.get("PORTAL_LOCAL_LOGIN", "all").strip().lower()

# --- Login throttling (django-axes) -------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one IP address,
# that pair is locked out for AXES_COOLOFF_MINUTES (an admin can unlock it
# earlier: Django admin, Users, "Unlock logins"). Per username+IP, so an attacker
# cannot lock a colleague out from elsewhere.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# And per address: this many wrong passwords from one address within the cool-off,
# for any usernames, lock the address out (one guesser trying many users). axes has
# one limit for all its lockout lists, so portal.login_throttle counts this one.
PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = envint("PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT", "50")
AXES_HANDLER = "portal.login_throttle.AddressLimitedHandler"

# The client address logins are counted under. Without a proxy: REMOTE_ADDR.
# Behind N reverse proxies that each append the address they were reached from to
# X-Forwarded-For (nginx: $proxy_add_x_forwarded_for), the client is the N-th entry
# from the right; everything left of it is whatever the client sent, so the left-most
# (django-ipware's default) would let anyone pick the address they are counted under.
# A proxy header without a trusted count is refused by a system check (portal.checks).
PORTAL_TRUSTED_PROXY_COUNT = envint("PORTAL_TRUSTED_PROXY_COUNT", "0")
AXES_IPWARE_META_PRECEDENCE_ORDER = envlist(
    "AXES_IP_HEADERS",
    "HTTP_X_FORWARDED_FOR,REMOTE_ADDR" if PORTAL_TRUSTED_PROXY_COUNT else "REMOTE_ADDR",
)
# ipware counts only the proxies listed in the header (the last one is REMOTE_ADDR)
# and picks chain[-(count + 1)]; not strict, so entries a client prepends do not make
# it give up on the header. portal.login_throttle.client_address calls it.
AXES_IPWARE_PROXY_COUNT = max(PORTAL_TRUSTED_PROXY_COUNT - 1, 0)
IPWARE_STRICT = False
AXES_CLIENT_IP_CALLABLE = "portal.login_throttle.client_address"


# --- Content-Security-Policy (django-csp) --------------------------------------
def url_origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else ""


PORTAL_OIDC_FORM_ACTION = sorted(
    {
        url_origin(url)
        for url in (PORTAL_OIDC_ISSUER, PORTAL_OIDC_END_SESSION_ENDPOINT)
        if PORTAL_OIDC_ENABLED and url
    }
)

# Pages load only their own scripts, styles and images: no inline scripts, no
# inline event handlers, no inline style attributes (the browser tests fail on
# any violation).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        # And the provider's: signing out (a form) ends in a redirect to it.
        "form-action": ["'self'", *PORTAL_OIDC_FORM_ACTION],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "config.urls"
# Filter-form widgets drawn once per distinct state (portal/form_rendering.py).
FORM_RENDERER = "portal.form_rendering.RememberingRenderer"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "operations.context_processors.sites",
            ],
            # portal_urls: a {% url %} that remembers its answers (10-20 % of a table
            # page's CPU was reversing the same patterns for every row).
            "builtins": ["portal.templatetags.portal_tags", "portal.templatetags.portal_urls"],
        },
    },
]

# Connections are kept (and checked before reuse): a worker runs thousands of short
# tasks a minute during a workshop, and a new PostgreSQL connection per task (a
# backend process forked each time) cost more than the tasks themselves.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "600"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # The web server, the worker and beat share one file: WAL lets readers
    # and one writer work at once, the timeout rides out short write locks.
    # synchronous=NORMAL is WAL's recommended setting: no corruption on a crash, and
    # commits do not wait for the disk (a power cut may lose the last ones); every
    # job step commits, and FULL spent most of a job's time in fsync.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    # The snapshot table's sort indexes carry the boot outcome as a non-key column on
    # PostgreSQL (INCLUDE, images 0015); SQLite builds them without it, as intended,
    # so its warning (printed by every manage.py command) has nothing to act on.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # QuerySet.iterator() reads through a client-side cursor. A form's choices of
    # projects or sites (ModelChoiceField iterates that way) were each a server-side
    # cursor: DECLARE … WITH HOLD, FETCH and CLOSE, three round trips for a few rows,
    # and every round trip of a busy web thread waits again for the GIL. No code
    # iterates a big table outside a migration, where the rows fit in memory.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    # Django's backend with a health check that asks the socket, not the server, when
    # the connection has nothing to read: one round trip less per request and per task
    # (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # PostgreSQL plans every statement it is sent, and the job engine sends the same
    # few thousands of times a minute: planning took a quarter of PostgreSQL's time in
    # the 1,000-job bench (pg_stat_statements: 1.6 of 6.3 s). With the parameters
    # bound on the server, psycopg prepares a statement the Nth time a connection
    # runs it, and PostgreSQL plans it once. Django leaves both off for connection
    # poolers: behind PgBouncer in transaction mode (without max_prepared_statements)
    # set DATABASE_PREPARE_THRESHOLD to nothing.
    prepare_threshold = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip()
    if prepare_threshold:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=int(prepare_threshold)
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's full set: a password an admin sets (admin forms) is refused when it is
# like the username or email, shorter than 8, on the list of 20,000 common ones
# ("password123"), or all digits.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# English unless the browser asks for German (Accept-Language) or the user chose it
# with the switch in the header (a cookie). How to add a language: README.md.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Our own date formats per language (config/formats/): English keeps the ISO dates
# the portal always showed, German gets 05.12.2026 14:03.
FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_COOKIE_SAMESITE = "Lax"
# The switch's choice outlives the browser session (Django's default cookie ends with it).
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "instances:instance-list"
LOGOUT_REDIRECT_URL = "login"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "portal@localhost")

# Trust the proxy's X-Forwarded-Proto only when told to: without a proxy that
# sets (and overwrites) it, any client could claim "https".
if envbool("PORTAL_TRUST_X_FORWARDED_PROTO", "0"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# --- OpenStack sites -------------------------------------------------------
# clouds.yaml holds the portal's service credentials, one entry per site.
OS_CLIENT_CONFIG_FILE = os.environ.get("OS_CLIENT_CONFIG_FILE", str(VAR_DIR / "clouds.yaml"))
# Which clouds.yaml entries are sites, with display names: "devcloud=Bielefeld,devcloud2=Heidelberg".
PORTAL_SITES = os.environ.get("PORTAL_SITES", "devcloud=Bielefeld,devcloud2=Heidelberg")
# The network(s) new machines join, per site: "devcloud=public;devcloud2=net-a,net-b"
# (names or ids). A project's own setting (Django admin) comes first; without
# either, a project with one usable network boots on it and one with several asks.
PORTAL_SITE_NETWORKS = os.environ.get("PORTAL_SITE_NETWORKS", "")
# Sites whose operators do not allow shelving, with the reason the pages show in
# place of Park: "devcloud2=Shelving is off at Berlin (no image store for shelved disks)".
PORTAL_SITE_NO_SHELVE = os.environ.get("PORTAL_SITE_NO_SHELVE", "")
# Names this portal in the markers its jobs put on cloud objects (portal.jobs.job_key),
# so two portals on one cloud (production and a staging copy) never adopt each
# other's servers. Default: derived from SECRET_KEY, which differs between them.
PORTAL_INSTALLATION_ID = (
    os.environ.get("PORTAL_INSTALLATION_ID")
    or hashlib.sha256(b"portal-installation:" + SECRET_KEY.encode()).hexdigest()[:8]
)
# Seconds the gateway waits for one OpenStack API call.
OPENSTACK_TIMEOUT = envfloat("OPENSTACK_TIMEOUT", "15")

# --- Jobs --------------------------------------------------------------------
# How long a waiting step sleeps before it looks again (backoff between these).
JOB_POLL_MIN_SECONDS = envfloat("JOB_POLL_MIN_SECONDS", "2")
JOB_POLL_MAX_SECONDS = envfloat("JOB_POLL_MAX_SECONDS", "15")
# A step the status watcher wakes (see below) polls only this often, as a fallback.
JOB_WATCHED_POLL_SECONDS = envfloat("JOB_WATCHED_POLL_SECONDS", "30")
# One advance of a job starts no new step after this many seconds (the rest runs in
# the next message). The task's soft time limit leaves room for one more call on top
# (OPENSTACK_TIMEOUT): a call that hangs ends as "not answering" before the limit.
JOB_RUN_SECONDS = envfloat("JOB_RUN_SECONDS", "8")
JOB_TASK_SOFT_SECONDS = JOB_RUN_SECONDS + OPENSTACK_TIMEOUT + 5
# A message on a queue of its own (the image copy's "transfer" queue) runs one long
# step: a transfer of hundreds of GB at ~100 MB/s takes hours. Its lease is renewed
# meanwhile, so a dead worker's copy is still taken over within seconds.
JOB_TRANSFER_TASK_SECONDS = envint("JOB_TRANSFER_TASK_SECONDS", "21600")
# A site that gives no answer at all (connections time out or are refused): jobs,
# the watcher and the syncs there wait, and a probe (one short call, with
# PORTAL_PROBE_TIMEOUT) asks once per JOB_SILENT_PROBE_SECONDS; a job
# that could not reach its site tries again after a backoff up to
# JOB_OUTAGE_BACKOFF_SECONDS. Undo steps (starting again an instance the job
# stopped) keep trying for JOB_UNDO_OUTAGE_SECONDS, backing off up to
# JOB_UNDO_OUTAGE_BACKOFF_SECONDS; the first answer from the site wakes them.
JOB_SILENT_PROBE_SECONDS = envfloat("JOB_SILENT_PROBE_SECONDS", "10")
# A worker that has waited this long for any answer from a site (a call that hangs)
# marks it silent at once, instead of after OPENSTACK_TIMEOUT: meanwhile the site's
# other work would pile onto the worker's other processes. A slow call that answers
# in the end clears the mark, and so does the probe.
JOB_SILENT_AFTER_SECONDS = envfloat("JOB_SILENT_AFTER_SECONDS", "5")
# The probe of a silent site waits this long for any answer.
PORTAL_PROBE_TIMEOUT = envfloat("PORTAL_PROBE_TIMEOUT", "3")
JOB_OUTAGE_BACKOFF_SECONDS = envfloat("JOB_OUTAGE_BACKOFF_SECONDS", "60")
JOB_UNDO_OUTAGE_SECONDS = envint("JOB_UNDO_OUTAGE_SECONDS", str(12 * 3600))
JOB_UNDO_OUTAGE_BACKOFF_SECONDS = envfloat("JOB_UNDO_OUTAGE_BACKOFF_SECONDS", "300")
# A create that was cut off (timed out, interrupted) may still be carried out by the
# cloud: the job looks for the server it asked for, and asks again only after this.
JOB_CREATE_LAND_SECONDS = envfloat("JOB_CREATE_LAND_SECONDS", str(OPENSTACK_TIMEOUT + 30))
# A job adopts (or deletes as its own) only what was created at or after it asked, in
# the cloud's clock (converted by the offset the portal reads off the cloud's Date
# header), less this much: the offset is only as fresh as the last listing, and Nova
# and Glance show whole seconds.
JOB_ADOPT_SKEW_SECONDS = envfloat("JOB_ADOPT_SKEW_SECONDS", "120")
# A job whose next run is this overdue, and that no worker holds, is handed to a
# worker again (its worker died, or Redis lost the message). The sweep runs every
# JOB_RECOVER_SWEEP_SECONDS, so recovery takes about the sum plus the lease (15 s).
JOB_RECOVER_AFTER_SECONDS = envint("JOB_RECOVER_AFTER_SECONDS", "5")
JOB_RECOVER_SWEEP_SECONDS = envint("JOB_RECOVER_SWEEP_SECONDS", "2")
# While workers have messages waiting, an overdue job is sent again only once it is
# this overdue (and once a minute at most): its message is most likely in the queue.
JOB_RECOVER_BACKLOG_SECONDS = envint("JOB_RECOVER_BACKLOG_SECONDS", "15")
# A waiting step fails when the cloud has shown no progress for this long (image
# status and size, task_state, updated_at unchanged): a time without progress, not
# an age, so a 500 GB snapshot that advances is never cut short.
JOB_NO_PROGRESS_SECONDS = envint("JOB_NO_PROGRESS_SECONDS", "600")
# Except a snapshot upload: real Glance shows nothing while Nova uploads (the image
# stays `saving`, no size, no new updated_at), so while Nova's task on the server is
# a snapshot task the wait is budgeted by the disk instead: at least
# JOB_UPLOAD_MIN_SECONDS, and JOB_UPLOAD_SECONDS_PER_GB per GB of the root disk.
JOB_UPLOAD_MIN_SECONDS = envfloat("JOB_UPLOAD_MIN_SECONDS", "1800")
JOB_UPLOAD_SECONDS_PER_GB = envfloat("JOB_UPLOAD_SECONDS_PER_GB", "60")
# A boot test waits this long for its instance to be ACTIVE, and again this long
# after ACTIVE for the console to show a login prompt (or cloud-init's "finished"
# line). A console that printed but showed neither: "does not boot"; a slower build
# or a console that stayed empty: "not tested" (the snapshot job still succeeds).
JOB_BOOT_TEST_SECONDS = envint("JOB_BOOT_TEST_SECONDS", "600")

# The status watcher (operations/watch.py) asks each site with unfinished jobs, once per
# PORTAL_WATCH_INTERVAL seconds, which servers and images changed (Nova changes-since,
# Glance updated_at=gt:), updates the mirror and wakes the jobs whose objects changed.
# While its last answer is at most PORTAL_WATCH_FRESH_SECONDS old, jobs read their
# server from the mirror instead of asking the cloud. Each query asks in the cloud's
# time (the portal's moment plus the offset read off the Date header of the cloud's
# last listing, so the clocks may differ by any amount) and reaches back
# PORTAL_WATCH_OVERLAP_SECONDS before the previous one: Date has whole seconds, and a
# change may land while the listing runs. A change missed anyway reaches the mirror
# with the next sync (60 s overlap).
PORTAL_WATCH_INTERVAL = envfloat("PORTAL_WATCH_INTERVAL", "1")
PORTAL_WATCH_FRESH_SECONDS = envfloat("PORTAL_WATCH_FRESH_SECONDS", "3")
PORTAL_WATCH_OVERLAP_SECONDS = envfloat("PORTAL_WATCH_OVERLAP_SECONDS", "2")
# A watch round's calls wait this long for an answer, not OPENSTACK_TIMEOUT: a round
# is worth a second, and a site that does not answer in this time backs off.
PORTAL_WATCH_TIMEOUT = envfloat("PORTAL_WATCH_TIMEOUT", "5")

# --- Celery ----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # the Job row is the record, not Celery's result
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# A task is acknowledged after it ran, so a worker that dies mid-step hands
# the step to another worker; steps are written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", "120")
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", "180")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Re-scheduled job steps wait as ETA messages; the visibility timeout must
# exceed the longest countdown (JOB_POLL_MAX_SECONDS) or Redis redelivers them
# early. Short, so the unacknowledged messages of a worker that died come back soon
# (a late copy is harmless: its wake token is stale by then).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "60")}
# Survive a Redis restart: keep reconnecting instead of exiting.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Celery's Django fixup closes the database connection before and after every task
# (Celery 5.7 no longer honours CONN_MAX_AGE there), and a new PostgreSQL
# connection per task cost a third of the workers' CPU in the 200-job bench. With
# this it closes them only every this many tasks; in between, config.celery drops
# unusable or obsolete ones (CONN_MAX_AGE, health checks) around each task, as
# Django does around each request.
CELERY_DB_REUSE_MAX = envint("CELERY_DB_REUSE_MAX", "1000")
# Every worker runs a ticker that sends these periodic tasks while it holds the
# database lease "tick" (see operations/ticker.py): no `celery beat` process to lose.
# Off for a worker that must not sync or sweep (the tests' own worker).
PORTAL_WORKER_TICKS = envbool("PORTAL_WORKER_TICKS", "1")
CELERY_BEAT_SCHEDULE = {
    "sites-sync": {
        "task": "portal.tasks.sites_sync_task",
        "schedule": timedelta(seconds=envint("PORTAL_SYNC_INTERVAL", "30")),
    },
    "jobs-recover-stuck": {
        "task": "portal.tasks.jobs_recover_stuck_task",
        "schedule": timedelta(seconds=JOB_RECOVER_SWEEP_SECONDS),
    },
    "sites-watch": {
        "task": "portal.tasks.sites_watch_task",
        "schedule": timedelta(seconds=PORTAL_WATCH_INTERVAL),
        # A watch that could not run in time is worthless: the next one is due.
        "options": {"expires": 2 * PORTAL_WATCH_INTERVAL},
    },
    # Participants' emails, PORTAL_WORKSHOP_EMAIL_DAYS after a workshop's teardown.
    # Every 10 minutes, not hourly: a worker taking the tick over starts each
    # schedule afresh, and a run with nothing due is one indexed query.
    "workshop-emails-purge": {
        "task": "portal.tasks.workshop_emails_purge_task",
        "schedule": timedelta(minutes=10),
    },
}
# The watcher has a queue of its own, which every worker consumes beside the default
# one: a burst of job messages (a workshop's 200 snapshots) never queues in front of
# the one task that tells those jobs the cloud is done.
CELERY_TASK_QUEUES = (Queue("celery"), Queue("watch"))
CELERY_TASK_ROUTES = {
    "portal.tasks.sites_watch_task": {"queue": "watch"},
    "portal.tasks.site_watch_task": {"queue": "watch"},
    "portal.tasks.site_probe_task": {"queue": "watch"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # openstacksdk logs every HTTP call at INFO; too loud for a console.
        "openstack": {"level": "WARNING"},
        "keystoneauth": {"level": "WARNING"},
        "stevedore": {"level": "WARNING"},
    },
}

# --- Mirror --------------------------------------------------------------------
# Every sync is incremental except one in this many seconds, which lists
# everything (Glance cannot tell which images were deleted since a moment).
PORTAL_FULL_SYNC_INTERVAL = envint("PORTAL_FULL_SYNC_INTERVAL", "300")

# --- Workshops -----------------------------------------------------------------
# Hosts an access link may point to besides the participant's own machine ({ip}),
# e.g. a Guacamole gateway: "gw.example.org,rstudio.example.org". Exact names only;
# an image property may only propose a link, and whoever runs the workshop confirms it.
PORTAL_ACCESS_HOSTS = envlist("PORTAL_ACCESS_HOSTS", "")
# Participants' emails are deleted this many days after their workshop's teardown
# finished: the organiser may still need to write to them afterwards, not for ever.
PORTAL_WORKSHOP_EMAIL_DAYS = envint("PORTAL_WORKSHOP_EMAIL_DAYS", "30")
