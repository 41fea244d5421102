"""Helpers shared by the Nova modules: microversions, links, pagination parameters."""

import re
import urllib.parse

from .web import ApiError

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 100)
MAX_LIMIT = 1000

# -- microversions ---------------------------------------------------------------


def fmt(version):
    return f"{version[0]}.{version[1]}"


def parse_microversion(req):
    value = None
    header = req.header("OpenStack-API-Version")
    if header:
        for part in header.split(","):
            service, _, ver = part.strip().partition(" ")
            if service.lower() == "compute":
                value = ver.strip()
    if value is None:
        value = req.header("X-OpenStack-Nova-API-Version")
    if value is None:
        return MIN_VERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    m = re.fullmatch(r"(\d+)\.(\d+)", value)
    if not m:
        raise ApiError(
            400,
            f"API Version String {value} is of invalid format. Must be of "
            "format MajorNum.MinorNum.",
        )
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ApiError(
            406,
            f"Version {value} is not supported by the API. Minimum is "
            f"{fmt(MIN_VERSION)} and maximum is {fmt(MAX_VERSION)}.",
        )
    return version


def add_version_headers(req, resp):
    if req.microversion is None:
        return
    version = fmt(req.microversion)
    resp.headers["OpenStack-API-Version"] = f"compute {version}"
    resp.headers["X-OpenStack-Nova-API-Version"] = version
    resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def mv(req, minor):
    return req.microversion >= (2, minor)


def links(req, collection, item_id):
    return [
        {"rel": "self", "href": f"{req.base_url}/compute/v2.1/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{req.base_url}/compute/{collection}/{item_id}"},
    ]


def bool_value(name, value):
    lowered = value.strip().lower()
    if lowered in ("", "1", "true", "t", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ApiError(400, f"Invalid value '{value}' for {name}: must be a boolean.")


def limit_param(req):
    raw = req.param("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "limit param must be an integer") from None
    if limit < 0:
        raise ApiError(400, "limit param must be positive")
    return min(limit, MAX_LIMIT)


def next_link(req, collection, marker):
    params = {}
    for key, value in req.query:
        params[key] = value
    params["marker"] = marker
    return [
        {
            "rel": "next",
            "href": f"{req.base_url}/compute/v2.1/{collection}?{urllib.parse.urlencode(params)}",
        }
    ]
