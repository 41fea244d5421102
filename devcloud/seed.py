"""The demo catalog (de.NBI-like) and bulk population for benchmarks.

IDs, names, sizes and checksums are deterministic per profile (uuid5 of the
profile and the object's name), so two fresh data directories of the same
profile agree. Timestamps are relative to the moment of seeding so that "old"
snapshots stay old-looking whenever the demo is started.
"""

import json
import random
import uuid

from . import clock
from .identity import hash_password
from .image import content_hashes, synthetic_content
from .store import dumps

NAMESPACE = uuid.UUID("6f1f6a52-52f4-4a56-9c8a-0d3c5c0b7e11")
GIB = clock.GIB
MIB = 1024**2
DAY = 86400.0

ADMIN_USER = "admin"
ADMIN_PASSWORD = "devcloud-admin"
ADMIN_PROJECT = "admin"


def member_user(project):
    return f"{project}-user"


def member_password(project):
    return f"{project}-devcloud"


def det_uuid(profile, kind, name):
    return str(uuid.uuid5(NAMESPACE, f"{profile}:{kind}:{name}"))


def project_id(profile, name):
    return uuid.UUID(det_uuid(profile, "project", name)).hex


def user_id(profile, name):
    return uuid.UUID(det_uuid(profile, "user", name)).hex


FLAVORS = [
    # name, vcpus, ram MiB, disk GB, public, extra_specs
    ("de.NBI tiny", 1, 2048, 20, True, {}),
    ("de.NBI small", 2, 4096, 50, True, {}),
    ("de.NBI medium", 4, 16384, 50, True, {}),
    ("de.NBI large", 8, 32768, 50, True, {}),
    (
        "de.NBI highmem xlarge",
        28,
        262144,
        50,
        True,
        {"aggregate_instance_extra_specs:highmem": "true"},
    ),
    (
        "de.NBI highmem 2xlarge",
        56,
        524288,
        50,
        True,
        {"aggregate_instance_extra_specs:highmem": "true"},
    ),
    (
        "de.NBI gpu",
        12,
        65536,
        50,
        False,
        {"pci_passthrough:alias": "V100:1", "aggregate_instance_extra_specs:gpu": "true"},
    ),
]

# name, os_distro, os_version, min_disk, min_ram, size, tags, content key
BASE_IMAGES = [
    ("Ubuntu-22.04-LTS", "ubuntu", "22.04", 20, 1024, 734003200, [], "ubuntu-22.04:r3"),
    ("Ubuntu-24.04-LTS", "ubuntu", "24.04", 20, 1024, 612368384, [], "ubuntu-24.04:r1"),
    ("Debian-12", "debian", "12", 20, 1024, 451411968, [], "debian-12:r2"),
    (
        "RStudio-Ubuntu-22.04",
        "ubuntu",
        "22.04",
        30,
        4096,
        4509715456,
        ["rstudio"],
        "rstudio-ubuntu-22.04:r5",
    ),
    (
        "Guacamole-Ubuntu-22.04",
        "ubuntu",
        "22.04",
        30,
        2048,
        3328599654,
        ["guacamole"],
        "guacamole-ubuntu-22.04:r2",
    ),
]

# The service a tool image's users open, as a URL template: a portal proposes it as
# a workshop's access link (e.g. the RStudio Server port, Guacamole's path).
ACCESS_URLS = {
    "RStudio-Ubuntu-22.04": "https://{ip}:8787/",
    "Guacamole-Ubuntu-22.04": "https://{ip}/guacamole/",
}

# Servers: name, flavor, base image, status, disk used (GiB), age in days
PRIMARY_SERVERS = {
    "alpha": [
        ("alpha-rstudio-01", "de.NBI medium", "RStudio-Ubuntu-22.04", "ACTIVE", 12.5, 210),
        ("alpha-web-01", "de.NBI small", "Ubuntu-22.04-LTS", "ACTIVE", 4.2, 180),
        ("alpha-worker-01", "de.NBI large", "Ubuntu-24.04-LTS", "ACTIVE", 8.0, 95),
        ("alpha-bigmem-01", "de.NBI highmem 2xlarge", "Ubuntu-22.04-LTS", "ACTIVE", 35.0, 60),
        ("alpha-assembly-01", "de.NBI highmem xlarge", "Debian-12", "SHUTOFF", 22.0, 45),
        ("alpha-analysis-02", "de.NBI small", "Ubuntu-22.04-LTS", "SHUTOFF", 3.1, 30),
        ("alpha-guacamole-01", "de.NBI small", "Guacamole-Ubuntu-22.04", "ACTIVE", 5.3, 20),
        ("alpha-broken-01", "de.NBI tiny", "Ubuntu-24.04-LTS", "ERROR", 0.0, 2),
        ("alpha-old-01", "de.NBI small", "Ubuntu-22.04-LTS", "DELETED", 6.0, 300),
    ],
    "beta": [
        ("beta-ws-01", "de.NBI small", "Ubuntu-22.04-LTS", "ACTIVE", 3.8, 120),
        ("beta-ws-02", "de.NBI medium", "Debian-12", "ACTIVE", 9.4, 80),
        ("beta-db-01", "de.NBI large", "Ubuntu-24.04-LTS", "SHUTOFF", 14.0, 40),
        ("beta-test-01", "de.NBI tiny", "Ubuntu-22.04-LTS", "ERROR", 0.0, 5),
    ],
}
SECONDARY_SERVERS = {
    "gamma": [
        ("gamma-ws-01", "de.NBI small", "Ubuntu-22.04-LTS", "ACTIVE", 4.0, 100),
        ("gamma-ws-02", "de.NBI medium", "Debian-12", "SHUTOFF", 7.5, 50),
        ("gamma-rstudio-01", "de.NBI medium", "RStudio-Ubuntu-22.04", "ACTIVE", 11.0, 15),
    ],
}

# Snapshots: server name, snapshot name suffix, age in days
PRIMARY_SNAPSHOTS = {
    "alpha": [
        ("alpha-old-01", "before-cleanup", 305),
        ("alpha-rstudio-01", "course-setup", 200),
        ("alpha-web-01", "v1", 170),
        ("alpha-rstudio-01", "packages-2024", 150),
        ("alpha-worker-01", "pipeline-base", 90),
        ("alpha-web-01", "v2", 75),
        ("alpha-bigmem-01", "reference-loaded", 55),
        ("alpha-assembly-01", "assembler-installed", 40),
        ("alpha-analysis-02", "results", 25),
        ("alpha-guacamole-01", "desktop", 14),
        ("alpha-rstudio-01", "weekly", 7),
        ("alpha-worker-01", "nightly", 1),
    ],
    "beta": [
        ("beta-ws-01", "clean", 110),
        ("beta-ws-02", "db-migrated", 60),
        ("beta-db-01", "backup", 10),
    ],
}
SECONDARY_SNAPSHOTS = {
    "gamma": [("gamma-ws-01", "baseline", 30)],
}

PROFILES = {
    "primary": {
        "projects": ["alpha", "beta"],
        "images": [img[0] for img in BASE_IMAGES],
        "overrides": {},
        "servers": PRIMARY_SERVERS,
        "snapshots": PRIMARY_SNAPSHOTS,
        "flavor_access": {"de.NBI gpu": ["alpha"]},
    },
    "secondary": {
        "projects": ["gamma"],
        "images": [img[0] for img in BASE_IMAGES if img[0] != "Guacamole-Ubuntu-22.04"],
        # The second site rebuilt Debian-12 itself: different file, bigger disk.
        "overrides": {
            "Debian-12": {"min_disk": 25, "key": "debian-12:site2-r1", "size": 478150656}
        },
        "servers": SECONDARY_SERVERS,
        "snapshots": SECONDARY_SNAPSHOTS,
        "flavor_access": {"de.NBI gpu": ["gamma"]},
    },
}

QUOTAS = {
    # alpha runs two highmem servers and still has room for a 5-VM workshop.
    "alpha": {"instances": 25, "cores": 128, "ram": 1024 * 1024},
}

STATUS_STATE = {
    "ACTIVE": ("active", 1),
    "SHUTOFF": ("stopped", 4),
    "ERROR": ("error", 0),
    "DELETED": ("deleted", 0),
}


def demo_projects(profile):
    return PROFILES[profile]["projects"]


def ensure_seeded(store, profile):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    if store.get_meta("seeded_profile") is not None:
        return False
    with store.write():
        if store.get_meta("seeded_profile") is None:
            _seed(store, profile)
            store.set_meta("seeded_profile", profile)
    return True


def _seed(store, profile):
    conn = store.conn
    spec = PROFILES[profile]
    now = float(int(clock.now_ts()))
    projects = [ADMIN_PROJECT] + spec["projects"]
    pids = {name: project_id(profile, name) for name in projects}
    for name in projects:
        description = (
            "devcloud administrators" if name == ADMIN_PROJECT else f"Demo research project {name}"
        )
        conn.execute(
            "INSERT INTO projects (id, name, description, quota) VALUES (?, ?, ?, ?)",
            (pids[name], name, description, dumps(QUOTAS.get(name, {}))),
        )
    admin_uid = user_id(profile, ADMIN_USER)
    conn.execute(
        "INSERT INTO users (id, name, password, default_project_id, email) VALUES (?, ?, ?, ?, ?)",
        (
            admin_uid,
            ADMIN_USER,
            hash_password(ADMIN_PASSWORD),
            pids[ADMIN_PROJECT],
            "admin@devcloud.invalid",
        ),
    )
    uids = {}
    for name in projects:
        # The service account is admin everywhere so it can scope into any project.
        conn.execute("INSERT INTO role_assignments VALUES (?, ?, 'admin')", (admin_uid, pids[name]))
    for name in spec["projects"]:
        uid = user_id(profile, member_user(name))
        uids[name] = uid
        conn.execute(
            "INSERT INTO users (id, name, password, default_project_id, email) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                uid,
                member_user(name),
                hash_password(member_password(name)),
                pids[name],
                f"{member_user(name)}@devcloud.invalid",
            ),
        )
        conn.execute("INSERT INTO role_assignments VALUES (?, ?, 'member')", (uid, pids[name]))

    flavors = {}
    for name, vcpus, ram, disk, public, extra in FLAVORS:
        fid = det_uuid(profile, "flavor", name)
        flavors[name] = {
            "id": fid,
            "name": name,
            "vcpus": vcpus,
            "ram": ram,
            "disk": disk,
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": extra,
        }
        conn.execute(
            "INSERT INTO flavors (id, name, vcpus, ram, disk, is_public, extra_specs, "
            "description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                name,
                vcpus,
                ram,
                disk,
                1 if public else 0,
                dumps(extra),
                None,
                clock.ts_to_db(now - 500 * DAY),
            ),
        )
    for flavor_name, project_names in spec["flavor_access"].items():
        for pname in project_names:
            conn.execute(
                "INSERT INTO flavor_access VALUES (?, ?)", (flavors[flavor_name]["id"], pids[pname])
            )

    images = {}
    for i, (name, distro, version, min_disk, min_ram, size, tags, key) in enumerate(BASE_IMAGES):
        if name not in spec["images"]:
            continue
        override = spec["overrides"].get(name, {})
        min_disk = override.get("min_disk", min_disk)
        size = override.get("size", size)
        key = override.get("key", key)
        md5, sha512 = content_hashes(synthetic_content(key))
        iid = det_uuid(profile, "image", name)
        created = clock.ts_to_db(now - (400 - i) * DAY)
        props = {
            "os_distro": distro,
            "os_version": version,
            "hw_rng_model": "virtio",
            "description": f"{name} base image maintained by the devcloud site",
        }
        if name in ACCESS_URLS:
            props["portal_access_url"] = ACCESS_URLS[name]
        images[name] = {
            "id": iid,
            "min_disk": min_disk,
            "min_ram": min_ram,
            "size": size,
            "properties": props,
        }
        conn.execute(
            "INSERT INTO images (id, name, status, visibility, owner, size, virtual_size, "
            "min_disk, min_ram, disk_format, container_format, protected, checksum, "
            "os_hash_algo, os_hash_value, created_at, updated_at, properties, tags, data) "
            "VALUES (?, ?, 'active', 'public', ?, ?, ?, ?, ?, 'qcow2', 'bare', 0, ?, 'sha512', "
            "?, ?, ?, ?, ?, ?)",
            (
                iid,
                name,
                pids[ADMIN_PROJECT],
                size,
                min_disk * GIB,
                min_disk,
                min_ram,
                md5,
                sha512,
                created,
                created,
                dumps(props),
                dumps(tags),
                f"synthetic:{key}",
            ),
        )

    counter = 2560
    servers = {}
    for pname, entries in spec["servers"].items():
        for name, flavor_name, image_name, status, used_gib, age in entries:
            sid = det_uuid(profile, "server", name)
            flavor = flavors[flavor_name]
            base = images[image_name]
            vm_state, power = STATUS_STATE[status]
            created_ts = now - age * DAY
            created = clock.ts_to_db(created_ts)
            launched = clock.ts_to_db(created_ts + 40) if status != "ERROR" else None
            updated = clock.ts_to_db(created_ts + 60)
            fault = None
            deleted = 1 if status == "DELETED" else 0
            deleted_at = clock.ts_to_db(now - (age - 10) * DAY) if deleted else None
            if deleted:
                updated = deleted_at
            ip = None
            if status in ("ACTIVE", "SHUTOFF"):
                ip = f"192.168.{counter // 254 % 256}.{counter % 254 + 1}"
                counter += 1
            if status == "ERROR":
                fault = dumps(
                    {
                        "code": 500,
                        "created": clock.ts_to_db(created_ts + 3),
                        "message": "No valid host was found. There are not enough hosts available.",
                        "details": "nova.exception.NoValidHost",
                    }
                )
            image_props = {
                "properties": base["properties"],
                "min_disk": base["min_disk"],
                "min_ram": base["min_ram"],
                "disk_format": "qcow2",
                "container_format": "bare",
                "size": base["size"],
            }
            servers[name] = {
                "id": sid,
                "project": pname,
                "flavor": flavor,
                "base": base,
                "base_name": image_name,
                "used": int(used_gib * GIB),
                "created_ts": created_ts,
            }
            conn.execute(
                "INSERT INTO servers (id, name, project_id, user_id, flavor_id, flavor, "
                "image_id, image_props, vm_state, task_state, power_state, created_at, "
                "updated_at, launched_at, terminated_at, deleted_at, deleted, metadata, network, "
                "ip, fault, disk_used_bytes, reservation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    name,
                    pids[pname],
                    uids[pname],
                    flavor["id"],
                    dumps(flavor),
                    base["id"],
                    dumps(image_props),
                    vm_state,
                    power,
                    created,
                    updated,
                    launched,
                    deleted_at,
                    deleted_at,
                    deleted,
                    dumps({}),
                    "private",
                    ip,
                    fault,
                    int(used_gib * GIB),
                    "r-" + sid[:8],
                ),
            )
    store.set_meta("ip_counter", str(counter))

    for pname, entries in spec["snapshots"].items():
        for server_name, suffix, age in entries:
            server = servers[server_name]
            name = f"{server_name}-{suffix}"
            iid = det_uuid(profile, "snapshot", name)
            md5, sha512 = content_hashes(synthetic_content(iid))
            # The disk grew over time; older snapshots are a bit smaller.
            size = int(server["used"] * (0.6 + 0.4 * (1 - min(age, 300) / 300))) or GIB
            props = dict(server["base"]["properties"])
            props.update(
                {
                    "image_type": "snapshot",
                    "instance_uuid": server["id"],
                    "user_id": uids[pname],
                    "base_image_ref": server["base"]["id"],
                    "owner_project_name": pname,
                    "owner_user_name": member_user(pname),
                    "boot_roles": "member,reader",
                }
            )
            created = clock.ts_to_db(now - age * DAY)
            conn.execute(
                "INSERT INTO images (id, name, status, visibility, owner, size, virtual_size, "
                "min_disk, min_ram, disk_format, container_format, protected, checksum, "
                "os_hash_algo, os_hash_value, created_at, updated_at, properties, tags, data) "
                "VALUES (?, ?, 'active', 'private', ?, ?, ?, ?, ?, 'qcow2', 'bare', 0, ?, "
                "'sha512', ?, ?, ?, ?, '[]', 'synthetic')",
                (
                    iid,
                    name,
                    pids[pname],
                    size,
                    server["flavor"]["disk"] * GIB,
                    max(server["base"]["min_disk"], server["flavor"]["disk"]),
                    server["base"]["min_ram"],
                    md5,
                    sha512,
                    created,
                    clock.ts_to_db(now - age * DAY + 120),
                    dumps(props),
                ),
            )


def populate(store, n_servers, n_images, project_name="alpha"):
    """Bulk-insert benchmark data into one project in a single transaction."""
    project = store.one("SELECT * FROM projects WHERE name = ?", (project_name,))
    if project is None:
        raise ValueError(f"no project named {project_name!r}")
    pid = project["id"]
    member = store.one(
        "SELECT u.id FROM users u JOIN role_assignments r ON r.user_id = u.id "
        "WHERE r.project_id = ? ORDER BY r.role = 'admin', u.name LIMIT 1",
        (pid,),
    )
    uid = member["id"]
    admin_project = store.one("SELECT id FROM projects WHERE name = ?", (ADMIN_PROJECT,))["id"]
    flavors = store.query("SELECT * FROM flavors WHERE is_public = 1 AND vcpus <= 8 ORDER BY vcpus")
    bases = store.query(
        "SELECT * FROM images WHERE visibility = 'public' AND deleted = 0 "
        "AND json_extract(properties, '$.image_type') IS NULL LIMIT 10"
    )
    rng = random.Random(f"{pid}:{n_servers}:{n_images}")
    now = clock.now_ts()
    tag = uuid.uuid4().hex[:6]
    counter = int(store.get_meta("ip_counter", "2560"))

    server_rows = []
    server_refs = []
    for i in range(n_servers):
        flavor = flavors[i % len(flavors)]
        base = bases[i % len(bases)]
        fsnap = {
            "id": flavor["id"],
            "name": flavor["name"],
            "vcpus": flavor["vcpus"],
            "ram": flavor["ram"],
            "disk": flavor["disk"],
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": {},
        }
        roll = rng.random()
        status = "ACTIVE" if roll < 0.7 else ("SHUTOFF" if roll < 0.95 else "ERROR")
        vm_state, power = STATUS_STATE[status]
        created_ts = now - DAY - i * 37.0 - rng.random()
        created = clock.ts_to_db(created_ts)
        sid = str(uuid.uuid4())
        ip = None
        if status != "ERROR":
            ip = f"192.168.{counter // 254 % 256}.{counter % 254 + 1}"
            counter += 1
        used = int(rng.uniform(1.5, 40) * GIB)
        base_props = {
            "properties": json.loads(base["properties"]),
            "min_disk": base["min_disk"],
            "min_ram": base["min_ram"],
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": base["size"],
        }
        fault = None
        if status == "ERROR":
            fault = dumps(
                {
                    "code": 500,
                    "created": created,
                    "message": "No valid host was found. There are not enough hosts available.",
                }
            )
        server_rows.append(
            (
                sid,
                f"{project_name}-bench-{tag}-{i:05d}",
                pid,
                uid,
                flavor["id"],
                dumps(fsnap),
                base["id"],
                dumps(base_props),
                vm_state,
                power,
                created,
                created,
                None if status == "ERROR" else created,
                dumps({}),
                "private",
                ip,
                fault,
                used,
                "r-bench",
            )
        )
        server_refs.append((sid, used, base, fsnap))
    image_rows = []
    for j in range(n_images):
        created = clock.ts_to_db(int(now - DAY - j * 11.0))
        iid = str(uuid.uuid4())
        md5, sha512 = content_hashes(synthetic_content(iid))
        if j % 5 == 4 or not server_refs:
            base = bases[j % len(bases)]
            props = json.loads(base["properties"])
            image_rows.append(
                (
                    iid,
                    f"bench-base-{tag}-{j:06d}",
                    "active",
                    "public",
                    admin_project,
                    base["size"],
                    base["virtual_size"],
                    base["min_disk"],
                    base["min_ram"],
                    md5,
                    sha512,
                    created,
                    created,
                    dumps(props),
                    dumps(["bench"]),
                )
            )
        else:
            sid, used, base, fsnap = server_refs[j % len(server_refs)]
            props = json.loads(base["properties"])
            props.update(
                {
                    "image_type": "snapshot",
                    "instance_uuid": sid,
                    "user_id": uid,
                    "base_image_ref": base["id"],
                    "owner_project_name": project_name,
                    "owner_user_name": member_user(project_name),
                    "boot_roles": "member,reader",
                }
            )
            image_rows.append(
                (
                    iid,
                    f"{project_name}-bench-snap-{tag}-{j:06d}",
                    "active",
                    "private",
                    pid,
                    used,
                    fsnap["disk"] * GIB,
                    max(base["min_disk"], fsnap["disk"]),
                    base["min_ram"],
                    md5,
                    sha512,
                    created,
                    created,
                    dumps(props),
                    "[]",
                )
            )
    with store.write() as conn:
        conn.executemany(
            "INSERT INTO servers (id, name, project_id, user_id, flavor_id, flavor, image_id, "
            "image_props, vm_state, power_state, created_at, updated_at, launched_at, metadata, "
            "network, ip, fault, disk_used_bytes, reservation_id) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            server_rows,
        )
        conn.executemany(
            "INSERT INTO images (id, name, status, visibility, owner, size, virtual_size, "
            "min_disk, min_ram, disk_format, container_format, checksum, os_hash_algo, "
            "os_hash_value, created_at, updated_at, properties, tags, data) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'qcow2', 'bare', ?, 'sha512', ?, ?, ?, ?, ?, "
            "'synthetic')",
            image_rows,
        )
        store.set_meta("ip_counter", str(counter))
    return len(server_rows), len(image_rows)
