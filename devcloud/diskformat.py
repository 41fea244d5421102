"""Virtual size of uploaded image data, the way Glance's format inspector finds it.

Glance inspects `bare` uploads while it stores them. If the detected format is
the image's disk_format it records that format's virtual size: the byte count
for raw, the size field of the header for qcow2. A `raw` image that turns out
to hold another format gets its byte count. Formats it cannot inspect (ami,
ari, aki) and mismatches leave virtual_size null (devcloud, like a Glance
without `require_image_format_match`, accepts the data anyway).

devcloud recognizes qcow2 only; other inspectable formats (vmdk, vhd, vhdx,
vdi, iso, ...) are treated as unrecognized data, so they keep a null
virtual_size unless their disk_format is raw.
"""

import struct

# Formats Glance's inspector knows; any other disk_format is not inspectable.
INSPECTABLE = {"raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "qed", "iso", "gpt", "luks"}

QCOW2_MAGIC = b"QFI\xfb"
# The inspector reads a 512-byte header region before it decides on qcow2.
QCOW2_HEADER_BYTES = 512


def detect(data):
    """('qcow2', virtual size) or ('raw', byte count)."""
    if len(data) >= QCOW2_HEADER_BYTES and data[:4] == QCOW2_MAGIC:
        # Big-endian: magic, version, backing file offset, backing file size,
        # cluster bits, then the virtual size in bytes at offset 24.
        (size,) = struct.unpack(">Q", data[24:32])
        return "qcow2", size
    return "raw", len(data)


def virtual_size(data, disk_format, container_format, length=None):
    """The virtual_size Glance records after this upload, or None. `data` may be
    the first bytes only (QCOW2_HEADER_BYTES suffice) when `length` is the total."""
    if container_format != "bare":
        return None
    total = len(data) if length is None else length
    found, size = detect(data)
    if found == "raw":
        size = total
    if found == disk_format:
        pass
    elif found == "raw" and disk_format not in INSPECTABLE:
        return None
    elif disk_format == "raw":
        size = total
    else:
        return None
    return size or None
