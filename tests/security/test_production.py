"""The production configuration, as an operator deploys it: DEBUG off unless set,
collectstatic works, `check --deploy` is clean, gunicorn serves pages and static
files, error pages show nothing internal, the proxy's scheme header is trusted
only when configured."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from scripts.stack import ROOT, free_port, stop_process, wait_for_port

# Each test starts Python processes of its own (manage.py, gunicorn): not for test-fast.
pytestmark = pytest.mark.slow

SECRET = "prod-smoke-3f9a1c7e5b2d4068a9e1f7c3b5d2e4a6c8b0d1f3e5a7c9b1"


def _env(tmp_path, **extra) -> dict:
    """A production environment: no DEBUG, not the tests' settings module (so no test defaults)."""
    import os

    # A clean production environment: none of the test run's own switches.
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        PORTAL_VAR_DIR=str(tmp_path / "var"),
        **extra,
    )
    return env


def _settings(env: dict, expression: str) -> str:
    code = (
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');"
        f"django.setup(); from django.conf import settings; print({expression})"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        return result.stderr.strip()
    return result.stdout.strip()


def test_debug_is_off_unless_set_and_a_key_is_required(tmp_path):
    env = _env(tmp_path)
    assert _settings(env, "settings.DEBUG") == "False"
    without_key = {k: v for k, v in env.items() if k != "SECRET_KEY"}
    assert "SECRET_KEY must be set when DEBUG is off" in _settings(without_key, "1")
    assert _settings({**without_key, "DEBUG": "1"}, "settings.DEBUG") == "True"


def test_the_proxy_scheme_header_is_trusted_only_when_configured(tmp_path):
    env = _env(tmp_path)
    assert _settings(env, "getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)") == "None"
    trusted = {**env, "PORTAL_TRUST_X_FORWARDED_PROTO": "1"}
    assert _settings(trusted, "settings.SECURE_PROXY_SSL_HEADER") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


@pytest.fixture
def production(tmp_path):
    env = _env(tmp_path, PORTAL_TRUST_X_FORWARDED_PROTO="1")

    def manage(*args):
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=180)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    manage("migrate", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    port = free_port()
    gunicorn = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn") if (ROOT / ".venv").exists() else "gunicorn",
         "-c", "config/gunicorn.conf.py", "config.wsgi", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT, env={**env, "WEB_CONCURRENCY": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, timeout=30, process=gunicorn)
    yield {"manage": manage, "base": f"http://127.0.0.1:{port}"}
    stop_process(gunicorn)


def _get(url: str) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_a_production_deploy_serves_pages_and_static_files(production):
    output = production["manage"]("check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in output

    status, headers, body = _get(production["base"] + "/login/")
    assert status == 200
    assert "Log in" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "max-age=" in headers["Strict-Transport-Security"]
    stylesheet = re.search(r'href="(/static/vendor/bootstrap\.min\.[0-9a-f]+\.css)"', body)
    assert stylesheet, "static files are served under hashed names"
    status, headers, css = _get(production["base"] + stylesheet.group(1))
    assert status == 200
    assert "bootstrap" in css.lower()

    status, _, body = _get(production["base"] + "/no-such-page/")
    assert status == 404
    assert "Traceback" not in body
    assert "settings" not in body.lower()


def test_the_production_settings_ignore_that_pytest_runs(tmp_path):
    """Test defaults live in config/settings_test.py, not behind a check for pytest."""
    env = {**_env(tmp_path), "PYTEST_VERSION": "9.0"}
    assert _settings(env, "settings.DEBUG") == "False"
    without_key = {k: v for k, v in env.items() if k != "SECRET_KEY"}
    assert "SECRET_KEY must be set when DEBUG is off" in _settings(without_key, "1")


def _gunicorn_settings(env: dict) -> dict[str, str]:
    gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn") if (ROOT / ".venv").exists() else "gunicorn"
    result = subprocess.run(
        [gunicorn, "-c", "config/gunicorn.conf.py", "--print-config", "config.wsgi"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in result.stdout.splitlines())
    )


def test_the_gunicorn_config_gives_threaded_workers_an_operator_can_resize(tmp_path):
    """The README's web command: two processes per core, two threads each (a second
    thread takes a request while the first waits for the database; more threads a
    process wait for its GIL), and WEB_CONCURRENCY / GUNICORN_THREADS size it for
    another machine."""
    import os

    env = _env(tmp_path)
    env.pop("WEB_CONCURRENCY", None)
    env.pop("GUNICORN_THREADS", None)
    settings = _gunicorn_settings(env)
    assert settings["worker_class"] == "gthread"
    assert settings["workers"] == str(2 * os.cpu_count())
    assert settings["threads"] == "2"
    assert settings["bind"] == "['127.0.0.1:8000']"
    resized = _gunicorn_settings({**env, "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "4"})
    assert (resized["workers"], resized["threads"]) == ("3", "4")


def test_the_readme_starts_the_web_server_with_the_gunicorn_config():
    notes = (ROOT / "README.md").read_text().split("## Production notes", 1)[1]
    assert "`gunicorn -c config/gunicorn.conf.py config.wsgi`" in notes


def test_the_readmes_worker_command_runs_as_written():
    # bench/load_bench.py and operators copy it as it stands: a placeholder such as
    # `-c N` made the bench's worker exit at once, and no job ran under the load.
    import re
    import shlex

    notes = (ROOT / "README.md").read_text().split("## Production notes", 1)[1]
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", notes, re.S)]
    workers = [s for s in spans if s.startswith("celery -A config worker")]
    assert workers
    for command in workers:
        args = shlex.split(command)
        for flag in ("-c", "--concurrency"):
            if flag in args:
                assert args[args.index(flag) + 1].isdigit(), command
