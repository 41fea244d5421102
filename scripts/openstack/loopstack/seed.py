"""Seeds the loopback cloud through its own APIs (openstacksdk, in the venv).

    python -m loopstack.seed SETTINGS.json identity   # after Keystone is up
    python -m loopstack.seed SETTINGS.json resources  # after every service is up

Both are idempotent: what exists is looked up and kept. The settings file is
written by scripts/openstack/up.py (ports, passwords, paths).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time

# This runs in the cloud's own venv, not the portal's: the gateway rule does not apply.
import openstack  # noqa: TID251
from openstack.config import OpenStackConfig  # noqa: TID251

PROJECTS = {
    "service": "Service accounts of the loopback cloud",
    "alpha": "Test project alpha",
    "beta": "Test project beta",
    "portal": "The portal's service account's home project",
}

# name: (vcpus, ram MiB, disk GB, public)
FLAVORS = {
    "de.NBI tiny": (1, 1024, 10, True),
    "de.NBI small": (2, 4096, 20, True),
    "de.NBI highmem": (64, 524288, 50, True),
    "de.NBI gpu": (8, 16384, 50, False),
}
PRIVATE_FLAVOR_ACCESS = {"de.NBI gpu": ["alpha"]}

# name: (size in bytes, properties)
IMAGES = {
    "Ubuntu-22.04-LTS": (
        384 * 1024,
        {
            "os_distro": "ubuntu",
            "os_version": "22.04",
            "portal_access_url": "https://{ip}:8787/",
        },
    ),
    "CentOS-7": (256 * 1024, {"os_distro": "centos", "os_version": "7"}),
}

SERVICES = [
    # (name, type, port key, path)
    ("glance", "image", "glance", ""),
    ("placement", "placement", "placement", ""),
    ("nova", "compute", "nova", "/v2.1"),
    ("neutron", "network", "neutron", ""),
]


def connect(settings: dict, cloud: str):
    config = OpenStackConfig(config_files=[settings["clouds_yaml"]], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def log(message: str) -> None:
    print(f"seed: {message}", flush=True)


def ensure_project(conn, name: str, description: str):
    project = conn.identity.find_project(name, domain_id="default")
    if project is None:
        project = conn.identity.create_project(
            name=name, description=description, domain_id="default"
        )
        log(f"project {name} created")
    return project


def ensure_user(conn, name: str, password: str, project=None):
    user = conn.identity.find_user(name, domain_id="default")
    if user is None:
        user = conn.identity.create_user(
            name=name,
            password=password,
            domain_id="default",
            default_project_id=project.id if project else None,
        )
        log(f"user {name} created")
    return user


def ensure_role(conn, name: str):
    role = conn.identity.find_role(name)
    if role is None:
        role = conn.identity.create_role(name=name)
        log(f"role {name} created")
    return role


def grant(conn, role, user, project) -> None:
    conn.identity.assign_project_role_to_user(project, user, role)


def ensure_endpoints(conn, settings: dict) -> None:
    region = settings["region"]
    for name, kind, key, path in SERVICES:
        service = conn.identity.find_service(name)
        if service is None:
            service = conn.identity.create_service(name=name, type=kind, enabled=True)
            log(f"service {name} ({kind}) created")
        url = settings["urls"][key] + path
        present = {
            endpoint.interface: endpoint
            for endpoint in conn.identity.endpoints(service_id=service.id)
        }
        for interface in ("public", "internal", "admin"):
            endpoint = present.get(interface)
            if endpoint is None:
                conn.identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=region
                )
            elif endpoint.url != url:
                conn.identity.update_endpoint(endpoint, url=url)


def seed_identity(settings: dict) -> None:
    conn = connect(settings, "openstack-admin")
    projects = {name: ensure_project(conn, name, text) for name, text in PROJECTS.items()}
    admin = ensure_role(conn, "admin")
    member = ensure_role(conn, "member")
    ensure_role(conn, "reader")
    service_role = ensure_role(conn, "service")
    for name in ("glance", "nova", "placement", "neutron"):
        user = ensure_user(conn, name, settings["service_password"], projects["service"])
        grant(conn, admin, user, projects["service"])
        grant(conn, service_role, user, projects["service"])
    accounts = settings["accounts"]
    portal = ensure_user(conn, "portal-service", accounts["portal-service"], projects["portal"])
    for name in ("portal", "alpha", "beta"):
        grant(conn, admin, portal, projects[name])
    for project in ("alpha", "beta"):
        user = ensure_user(conn, f"{project}-user", accounts[f"{project}-user"], projects[project])
        grant(conn, member, user, projects[project])
    ensure_endpoints(conn, settings)
    log("identity ready")


def wait_for(what: str, probe, timeout: float = 120.0, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as error:  # a service still starting
            last = error
        time.sleep(interval)
    raise SystemExit(f"seed: timed out waiting for {what} (last error: {last})")


def ensure_network(conn) -> dict:
    network = conn.network.find_network("public-net")
    if network is None:
        network = conn.network.create_network(
            name="public-net",
            shared=True,
            provider_network_type="flat",
            provider_physical_network="physnet1",
        )
        log("network public-net created")
    subnet = conn.network.find_subnet("public-subnet", network_id=network.id)
    if subnet is None:
        conn.network.create_subnet(
            name="public-subnet",
            network_id=network.id,
            ip_version=4,
            cidr="10.20.0.0/24",
            gateway_ip="10.20.0.1",
            allocation_pools=[{"start": "10.20.0.10", "end": "10.20.0.250"}],
            enable_dhcp=True,
        )
        log("subnet public-subnet created")
    return {"public-net": network.id}


def ensure_flavors(conn, project_ids: dict) -> dict:
    ids = {}
    existing = {flavor.name: flavor for flavor in conn.compute.flavors(is_public=None)}
    for name, (vcpus, ram, disk, public) in FLAVORS.items():
        flavor = existing.get(name)
        if flavor is None:
            flavor = conn.compute.create_flavor(
                name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=public
            )
            log(f"flavor {name} created")
        ids[name] = flavor.id
        if not public:
            granted = {access["tenant_id"] for access in conn.compute.get_flavor_access(flavor)}
            for project in PRIVATE_FLAVOR_ACCESS.get(name, []):
                if project_ids[project] not in granted:
                    conn.compute.flavor_add_tenant_access(flavor, project_ids[project])
    return ids


def image_bytes(name: str, size: int) -> bytes:
    header = f"LOOPBACK IMAGE {name}\n".encode()
    block = b""
    counter = 0
    while len(header) + len(block) < size:
        block += hashlib.sha256(f"{name}/{counter}".encode()).digest()
        counter += 1
    return (header + block)[:size]


def ensure_images(conn) -> dict:
    ids = {}
    for name, (size, properties) in IMAGES.items():
        image = conn.image.find_image(name)
        if image is not None and image.status != "active":
            conn.image.delete_image(image)
            image = None
        if image is None:
            data = image_bytes(name, size)
            image = conn.image.create_image(
                name=name,
                data=io.BytesIO(data),
                md5=hashlib.md5(data).hexdigest(),
                sha256=hashlib.sha256(data).hexdigest(),
                disk_format="raw",
                container_format="bare",
                visibility="public",
                disable_vendor_agent=False,
                use_import=False,
                wait=True,
                timeout=120,
                **properties,
            )
            log(f"image {name} uploaded")
        ids[name] = image.id
    return ids


def seed_resources(settings: dict) -> None:
    conn = connect(settings, "openstack-admin")
    project_ids = {
        name: conn.identity.find_project(name, domain_id="default").id
        for name in ("alpha", "beta", "portal")
    }
    wait_for("the compute service", lambda: list(conn.compute.services(binary="nova-compute")))
    networks = ensure_network(conn)
    flavors = ensure_flavors(conn, project_ids)
    images = ensure_images(conn)
    wait_for(
        "a hypervisor in placement",
        lambda: list(conn.placement.resource_providers()),
        timeout=180,
    )
    info = {
        "projects": project_ids,
        "flavors": flavors,
        "images": images,
        "networks": networks,
        "knobs_path": settings["knobs_path"],
        "clouds_yaml": settings["clouds_yaml"],
        "endpoints": settings["endpoints"],
        "region": settings["region"],
        "accounts": settings["accounts"],
        "compute_host": settings["compute_host"],
    }
    with open(settings["cloud_json"] + ".tmp", "w") as handle:
        json.dump(info, handle, indent=2, sort_keys=True)
    os.replace(settings["cloud_json"] + ".tmp", settings["cloud_json"])
    log(f"resources ready; {settings['cloud_json']} written")


def main(argv: list[str]) -> None:
    with open(argv[1]) as handle:
        settings = json.load(handle)
    steps = {"identity": seed_identity, "resources": seed_resources}
    for step in argv[2:]:
        steps[step](settings)


if __name__ == "__main__":
    main(sys.argv)
