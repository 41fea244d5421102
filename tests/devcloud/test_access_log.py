"""One flushed access-log line per request, in a parseable format."""

import re

import requests

LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (GET|POST|PUT|PATCH|DELETE|HEAD) "
    r"(\S+) (\d{3}) (\d+\.\d) (\S+)$"
)


def _lines(cloud):
    with open(cloud.access_log_path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def test_every_request_is_logged_once_with_project(cloud, alpha):
    before = len(_lines(cloud))
    alpha.get("/compute/v2.1/servers/detail", params={"name": "web"})
    alpha.get("/image/v2/images/does-not-exist")
    requests.get(cloud.auth_url)
    lines = _lines(cloud)
    assert len(lines) == before + 3
    parsed = [LINE.match(line) for line in lines[-3:]]
    assert all(parsed), lines[-3:]
    first, second, third = (m.groups() for m in parsed)
    assert first[1:4] == ("GET", "/compute/v2.1/servers/detail?name=web", "200")
    assert first[5] == alpha.project_id
    assert second[2:4] == ("/image/v2/images/does-not-exist", "404")
    assert third[2:][0] == "/identity"
    assert third[3] == "300"
    assert third[5] == "-"
    assert float(first[4]) >= 0


def test_log_line_exists_as_soon_as_the_response_arrives(cloud, alpha):
    # The portal counts lines right after a page view: the line must already be there.
    for _ in range(50):
        before = len(_lines(cloud))
        alpha.get("/compute/v2.1/flavors")
        assert len(_lines(cloud)) == before + 1
