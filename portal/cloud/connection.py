"""Connections to the sites, and the translation of SDK errors into portal errors.

One connection per (site, project) per process: the service account of the
site's clouds.yaml entry, re-scoped to a project when an action must happen
inside it (a snapshot is owned by the project of the token that made it, a
server belongs to the project of the token that created it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import keystoneauth1.exceptions as ksa_exceptions
import openstack
import openstack.config
import openstack.exceptions as sdk_exceptions
from django.conf import settings

from portal.cloud.errors import (
    BadRequest,
    CloudError,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
)

_lock = threading.Lock()
_connections: dict[tuple[str, str], openstack.connection.Connection] = {}


def connection_for(site: str, *, project_id: str = "") -> openstack.connection.Connection:
    """The cached connection for a site (optionally scoped to one of its projects)."""
    key = (site, project_id)
    with _lock:
        conn = _connections.get(key)
    if conn is not None:
        return conn
    with translate_errors(site):
        base = _connections.get((site, ""))
        if base is None:
            config = openstack.config.OpenStackConfig(
                config_files=[settings.OS_CLIENT_CONFIG_FILE], load_envvars=False
            )
            # One quick retry at most inside the SDK: it sleeps while holding a worker
            # slot (up to 15 s with its defaults), the job engine waits without one.
            region = config.get_one(
                cloud=site,
                api_timeout=settings.OPENSTACK_TIMEOUT,
                status_code_retries=1,
                connect_retries=1,
            )
            base = openstack.connection.Connection(config=region)
        conn = base.connect_as(project_id=project_id) if project_id else base
    with _lock:
        _connections.setdefault((site, ""), base)
        return _connections.setdefault(key, conn)


def connections_reset() -> None:
    """Forget every cached connection (after clouds.yaml changed, and in tests)."""
    with _lock:
        _connections.clear()


def _message(exc: sdk_exceptions.HttpException) -> str:
    details = getattr(exc, "details", None)
    return str(details or exc.message or exc)


@contextlib.contextmanager
def translate_errors(site: str) -> Iterator[None]:
    """Turn SDK / keystoneauth exceptions into the portal's few errors."""
    try:
        yield
    except CloudError:
        raise
    except sdk_exceptions.NotFoundException as exc:
        raise NotFound(_message(exc), site=site, status=404) from exc
    except sdk_exceptions.ConflictException as exc:
        raise Conflict(_message(exc), site=site, status=409) from exc
    except sdk_exceptions.ForbiddenException as exc:
        raise Forbidden(_message(exc), site=site, status=403) from exc
    except sdk_exceptions.BadRequestException as exc:
        raise BadRequest(_message(exc), site=site, status=400) from exc
    except sdk_exceptions.HttpException as exc:
        status = exc.status_code
        if status is not None and status < 500 and status not in (408, 429):
            raise BadRequest(_message(exc), site=site, status=status) from exc
        raise Unavailable(
            f"{site} answered {status or 'an error'}: {_message(exc)}", site=site, status=status
        ) from exc
    except (ksa_exceptions.ClientException, sdk_exceptions.SDKException, OSError) as exc:
        # Connection refused, timeouts, discovery failures, a missing clouds.yaml
        # entry: all mean "we cannot talk to this site right now".
        raise Unavailable(f"{site} is unreachable: {exc}", site=site) from exc
