"""The test suite's settings (pytest picks them: pyproject.toml, DJANGO_SETTINGS_MODULE).

The developer defaults, whatever the environment leaves unset: DEBUG on, so the
development key is allowed and no HTTPS redirect or hashed static files get in the
way (pytest-django still renders pages with DEBUG off). Set in the environment, not
here after the import, because settings.py derives the HTTPS and static settings
from DEBUG; processes the tests start (a Celery worker, manage.py) inherit them and
DJANGO_SETTINGS_MODULE alike. The production smoke test drops all three.
"""

import os

os.environ.setdefault("DEBUG", "1")
# A run with DEBUG=0 (to see production behaviour in-process) needs no key either:
# the development key settings.py falls back to.
os.environ.setdefault("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")

from config.settings import *  # noqa: F403
from config.settings import DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so a real Celery worker started by the tests sees the
    # same database as the test process. Under pytest-xdist, pytest-django appends
    # each worker's id to it (`..._gw0`): one database per worker.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("PORTAL_TEST_DB", str(VAR_DIR / "test-portal.sqlite3"))
    }
