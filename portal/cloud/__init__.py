"""The one gateway to OpenStack. Nothing else in the portal imports `openstack`.

Functions are named `<resource>_<verb>`, take the site's clouds.yaml name
first and keyword arguments after, return the plain values of `types`, and
raise only the errors of `errors`.
"""

from portal.cloud.compute import (
    flavor_list,
    limits_get,
    server_console_output,
    server_create,
    server_create_image,
    server_delete,
    server_find,
    server_get,
    server_list,
    server_pages,
    server_shelve,
    server_shelved_image,
    server_start,
    server_stop,
    server_unshelve,
)
from portal.cloud.connection import call_timeout, connections_reset, own_user_id
from portal.cloud.errors import (
    BadRequest,
    CloudError,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
)
from portal.cloud.identity import project_list, site_probe
from portal.cloud.image import (
    image_delete,
    image_find_by_property,
    image_get,
    image_list,
    image_pages,
)
from portal.cloud.keypairs import keypair_delete, keypair_get, keypair_import
from portal.cloud.network import network_list
from portal.cloud.transfer import image_create, image_data_copy
from portal.cloud.types import (
    CloudFlavor,
    CloudImage,
    CloudKeypair,
    CloudNetwork,
    CloudProject,
    CloudServer,
    Limits,
)
from portal.cloud.util import answered_since, clock_offset, last_answer, unanswered_for

__all__ = [
    "BadRequest",
    "CloudError",
    "CloudFlavor",
    "CloudImage",
    "CloudKeypair",
    "CloudNetwork",
    "CloudProject",
    "CloudServer",
    "Conflict",
    "Forbidden",
    "Limits",
    "NotFound",
    "Unavailable",
    "answered_since",
    "call_timeout",
    "clock_offset",
    "connections_reset",
    "flavor_list",
    "image_create",
    "image_data_copy",
    "image_delete",
    "image_find_by_property",
    "image_get",
    "image_list",
    "image_pages",
    "keypair_delete",
    "keypair_get",
    "keypair_import",
    "last_answer",
    "limits_get",
    "network_list",
    "own_user_id",
    "project_list",
    "server_console_output",
    "server_create",
    "server_create_image",
    "server_delete",
    "server_find",
    "server_get",
    "server_list",
    "server_pages",
    "server_shelve",
    "server_shelved_image",
    "server_start",
    "server_stop",
    "server_unshelve",
    "site_probe",
    "unanswered_for",
]
