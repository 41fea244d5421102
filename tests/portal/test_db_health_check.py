"""A kept PostgreSQL connection is checked before reuse without a round trip
(config/postgresql/base.py), and a connection the server ended is still replaced
before the request's first query: no 500 after a PostgreSQL restart."""

from __future__ import annotations

import io
import sys
import time

import psycopg
import pytest
from django.db import connection

from tests import conftest

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL connections"),
    pytest.mark.django_db(transaction=True),
]


def last_query_of(pid: int) -> str:
    """What the server says backend `pid` ran last, asked over a connection of its own."""
    with psycopg.connect(conftest.test_database_url(), autocommit=True) as other:
        row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row[0] if row else ""


def end_backend(pid: int) -> None:
    """What a restart does to the connection: the server sends FATAL and closes it."""
    with psycopg.connect(conftest.test_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            time.sleep(0.02)


def get(path: str, cookie: str) -> int:
    """One request through the WSGI handler, as gunicorn hands it over: the request
    signals run (Django's test client skips the connection checks they make)."""
    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "testserver", "HTTP_COOKIE": f"sessionid={cookie}",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https", "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }  # fmt: skip
    status = {}
    body = application(environ, lambda line, headers, exc_info=None: status.update(line=line))
    try:
        for _chunk in body:
            pass
    finally:
        body.close()
    return int(status["line"].split()[0])


def test_a_kept_connection_is_reused_without_asking_the_server(settings):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the request before'")
    pid = connection.connection.info.backend_pid
    # What the next request does before its first query: request_started, then the check.
    connection.close_if_unusable_or_obsolete()
    with connection.cursor():  # Django checks a kept connection as it opens a cursor
        pass
    assert connection.connection.info.backend_pid == pid  # the same connection, kept
    assert last_query_of(pid) == "SELECT 'the request before'"  # no SELECT 1 in between


def test_a_request_after_the_server_ended_the_connection_gets_a_new_one(client, people, settings):
    """Guard (passes with Django's SELECT 1 check too): what a PostgreSQL restart does
    to each kept connection must not turn the next request into a 500."""
    settings.SECURE_SSL_REDIRECT = False
    client.force_login(people["bob"])
    cookie = client.cookies["sessionid"].value
    assert get("/jobs/", cookie) == 200  # a page that reads the session, the user, jobs
    pid = connection.connection.info.backend_pid
    end_backend(pid)
    assert get("/jobs/", cookie) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_connection_past_descriptor_1023_is_still_checked_without_a_round_trip():
    """select() refuses a descriptor past 1023 (FD_SETSIZE): a check built on it would
    drop and reopen the connection before every request of a busy process."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("this process may not open 1,200 files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = []
    try:
        while not spare or spare[-1] < 1100:
            spare.append(os.dup(0))
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'the request before'")
        assert connection.connection.fileno() > 1023
        pid = connection.connection.info.backend_pid
        connection.close_if_unusable_or_obsolete()
        with connection.cursor():
            pass
        assert connection.connection.info.backend_pid == pid
        assert last_query_of(pid) == "SELECT 'the request before'"
    finally:
        connection.close()
        for descriptor in spare:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
