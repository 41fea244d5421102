"""What makes an instance snapshottable at all, whoever asks.

The snapshot services refuse by these rules; the instance pages show them
through the `snapshot_refusal` template filter (snapshots/templatetags), so the
instances app never imports snapshots.
"""

from __future__ import annotations

from django.utils.formats import number_format
from django.utils.translation import gettext

from instances.models import Server

# A snapshot preserves the full RAM state; de.NBI limits snapshots to flavors with
# at most this much RAM. The overview and the detail page show the action
# disabled with the reason; the snapshot service refuses it again.
SNAPSHOT_MAX_RAM_MIB = 256 * 1024


def gib_text(mib: int) -> str:
    return f"{mib / 1024:g} GiB ({number_format(mib, force_grouping=True)} MiB)"


def snapshot_refusal(server: Server) -> str:
    """Why no snapshot of this server can ever be made, or "" when it can."""
    if server.boots_from_volume:
        # createImage would make a 0-byte image pointing at Cinder volume snapshots,
        # which may still be `creating` when the image is active, and which deleting
        # the image leaves behind. The portal does not handle Cinder (yet).
        return gettext(
            "%(server)s boots from a volume: its snapshot would be an empty image "
            "plus snapshots of its volumes in Cinder, which the portal cannot wait for "
            "or clean up. Snapshot the volume in your site's cloud dashboard instead."
        ) % {"server": server.name}
    if server.flavor_ram_mib <= SNAPSHOT_MAX_RAM_MIB:
        return ""
    return gettext(
        "Snapshots are limited to instances with at most %(limit)s RAM, because a snapshot "
        "preserves the full RAM state. %(server)s runs on flavor %(flavor)s with %(ram)s."
    ) % {
        "limit": gib_text(SNAPSHOT_MAX_RAM_MIB),
        "server": server.name,
        "flavor": server.flavor_name,
        "ram": gib_text(server.flavor_ram_mib),
    }
