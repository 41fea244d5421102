"""Plain values the gateway returns. Templates and services never see SDK objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class CloudFlavor:
    id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gb: int
    is_public: bool = True
    # A private flavor's access list: the projects whose servers may use it
    # (Nova refuses it elsewhere, even to an admin). Empty for public flavors.
    access_project_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CloudNetwork:
    id: str
    name: str
    project_id: str
    shared: bool
    external: bool  # router:external: a provider network for floating IPs, not for servers


@dataclass(frozen=True)
class CloudServer:
    id: str
    name: str
    status: str  # ACTIVE, SHUTOFF, BUILD, ERROR, DELETED (only in changes-since lists), ...
    task_state: str | None
    vm_state: str | None
    power_state: int | None
    project_id: str
    user_id: str
    flavor_name: str
    flavor_vcpus: int
    flavor_ram_mib: int
    flavor_disk_gb: int
    image_id: str  # "" when booted from a volume
    addresses: tuple[str, ...]
    metadata: Mapping[str, str]
    created_at: datetime | None
    updated_at: datetime | None
    fault_message: str = ""
    # An admin's lock: Nova refuses stop/start/delete to the project's users, but
    # not to the portal's service account (it has the admin role), so the portal
    # refuses them itself.
    locked: bool = False
    locked_reason: str = ""
    # The Nova key pair injected at boot (None: booted without one).
    key_name: str | None = None

    @property
    def is_deleted(self) -> bool:
        return self.status == "DELETED"


@dataclass(frozen=True)
class CloudImage:
    id: str
    name: str
    status: str  # queued, saving, active, killed, deleted, ...
    visibility: str
    owner: str
    size: int | None
    min_disk: int
    min_ram: int
    checksum: str
    protected: bool
    tags: tuple[str, ...]
    properties: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    disk_format: str = ""
    container_format: str = ""
    # Glance's secure hash of the data (os_hash_algo: "sha512" by default); "" until active.
    hash_algo: str = ""
    hash_value: str = ""

    @property
    def is_snapshot(self) -> bool:
        return self.properties.get("image_type") == "snapshot"


@dataclass(frozen=True)
class CloudKeypair:
    name: str
    public_key: str
    fingerprint: str  # Nova's: MD5, "aa:bb:..."
    type: str = "ssh"


@dataclass(frozen=True)
class CloudProject:
    id: str
    name: str


@dataclass(frozen=True)
class Limits:
    max_instances: int
    max_cores: int
    max_ram_mib: int
    used_instances: int
    used_cores: int
    used_ram_mib: int
