#!/usr/bin/env python3
"""A real OpenStack cloud on loopback: Keystone, Glance, Placement, Nova, Neutron.

    python3 scripts/openstack/up.py          # install what is missing, start, seed
    python3 scripts/openstack/up.py status   # which processes are up
    python3 scripts/openstack/up.py stop     # stop every process it started

Stock services from PyPI in one venv (var/openstack/venv), Debian's MariaDB
and RabbitMQ with their data under var/openstack, APIs under uwsgi on
127.0.0.1:25000-25060, our own Nova virt driver and ML2 mechanism driver
(scripts/openstack/loopstack). Idempotent: a second run that finds every
process up only checks health. Standard library only. See README.md here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from loopstack.knobs import DEFAULT_KNOBS  # this script's folder is first on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STATE = Path(os.environ.get("LOOPSTACK_STATE", ROOT / "var" / "openstack"))
VENV = STATE / "venv"
BIN = VENV / "bin"
LOG = STATE / "log"
RUN = STATE / "run"
CONF = STATE / "etc"
TEMPLATES = HERE / "etc"

HOST = "127.0.0.1"
PORTS = {
    "keystone": 25000,
    "glance": 25010,
    "placement": 25020,
    "nova": 25030,
    "neutron": 25040,
    "mysql": 25050,
    "rabbitmq": 25060,
    "rabbitmq-dist": 25061,
    "epmd": 25062,
}
REGION = "RegionOne"
COMPUTE_HOST = "loopback"
# Loopback-only test credentials (documented in README.md).
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = "service-secret"
DB_USER, DB_PASSWORD = "openstack", "db-secret"
RABBIT_USER, RABBIT_PASSWORD = "openstack", "rabbit-secret"
ACCOUNTS = {
    "portal-service": "portal-service-secret",
    "alpha-user": "alpha-user-secret",
    "beta-user": "beta-user-secret",
}
DATABASES = ["keystone", "glance", "placement", "nova_api", "nova_cell0", "nova_cell1", "neutron"]
APT_PACKAGES = ["mariadb-server", "rabbitmq-server"]
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")

URLS = {
    name: f"http://{HOST}:{PORTS[name]}"
    for name in ("keystone", "glance", "placement", "nova", "neutron")
}
ENDPOINTS = {
    "identity": URLS["keystone"] + "/v3",
    "image": URLS["glance"],
    "placement": URLS["placement"],
    "compute": URLS["nova"] + "/v2.1",
    "network": URLS["neutron"],
}

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[openstack {time.monotonic() - T0:6.1f}s] {message}", flush=True)


def run(
    cmd: list,
    *,
    log_name: str | None = None,
    env: dict | None = None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command; its output goes to log/<log_name>.log (or is captured)."""
    full_env = dict(os.environ, **(env or {}))
    if log_name:
        with open(LOG / f"{log_name}.log", "a") as out:
            out.write(f"\n### {time.strftime('%H:%M:%S')} {' '.join(map(str, cmd))}\n")
            out.flush()
            result = subprocess.run(
                [str(c) for c in cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                input=input,
                text=True,
            )
    else:
        result = subprocess.run(
            [str(c) for c in cmd], capture_output=True, env=full_env, input=input, text=True
        )
    if check and result.returncode != 0:
        detail = (
            f"see {LOG / (log_name + '.log')}"
            if log_name
            else (result.stdout + result.stderr)[-3000:]
        )
        raise SystemExit(
            f"openstack: command failed ({result.returncode}): {' '.join(map(str, cmd))}\n{detail}"
        )
    return result


# --- installation ---------------------------------------------------------------


def ensure_debian_packages() -> None:
    missing = []
    if not shutil.which("mariadbd", path="/usr/sbin:/usr/bin"):
        missing.append("mariadb-server")
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        missing.append("rabbitmq-server")
    # The portal's tests against this cloud run a worker whose clock is off (libfaketime).
    if not shutil.which("faketime"):
        missing.append("faketime")
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], log_name="apt", env=env)
    # Services must not start from the package scripts; we start our own.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "-qq", *missing], log_name="apt", env=env)
    finally:
        if made_policy:
            policy.unlink()


def requirements_digest() -> str:
    data = (HERE / "requirements.txt").read_bytes() + sys.version.encode()
    return hashlib.sha256(data).hexdigest()[:16]


def site_packages() -> Path:
    return next((VENV / "lib").glob("python3*/site-packages"))


def ensure_venv() -> None:
    stamp = VENV / f".installed-{requirements_digest()}"
    if not stamp.exists():
        if not (BIN / "python").exists():
            say(f"creating {VENV}")
            run([sys.executable, "-m", "venv", VENV], log_name="pip")
        say("installing the OpenStack services into the venv (pip, ~2 minutes)")
        run([BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"], log_name="pip")
        run(
            [BIN / "python", "-m", "pip", "install", "-r", HERE / "requirements.txt"],
            log_name="pip",
        )
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    install_plugins()


def install_plugins() -> None:
    """Make scripts/openstack/loopstack importable and registered in the venv."""
    sp = site_packages()
    (sp / "loopstack.pth").write_text(str(HERE) + "\n")
    dist = sp / "loopstack-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loopstack\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[neutron.ml2.mechanism_drivers]\nloopback = loopstack.ml2:LoopbackMechanismDriver\n"
    )
    (dist / "RECORD").write_text("")
    # Nova imports compute drivers from the nova.virt package only.
    (sp / "nova" / "virt" / "loopback.py").write_text(
        '"""Shim: the loopback cloud\'s driver lives in scripts/openstack/loopstack/virt.py."""\n'
        "from loopstack.virt import LoopbackDriver  # noqa: F401\n"
    )


# --- configuration --------------------------------------------------------------


def settings() -> dict:
    return {
        "region": REGION,
        "compute_host": COMPUTE_HOST,
        "service_password": SERVICE_PASSWORD,
        "accounts": ACCOUNTS,
        "urls": URLS,
        "endpoints": ENDPOINTS,
        "clouds_yaml": str(STATE / "clouds.yaml"),
        "cloud_json": str(STATE / "cloud.json"),
        "knobs_path": str(STATE / "knobs.json"),
    }


def render(template: str, target: Path, **values) -> None:
    text = string.Template((TEMPLATES / template).read_text()).substitute(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def write_configs() -> None:
    common = {
        "STATE": STATE,
        "LOG": LOG,
        "CONF": CONF,
        "DB": f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mysql']}",
        "KEYSTONE_URL": URLS["keystone"],
        "GLANCE_URL": URLS["glance"],
        "GLANCE_PORT": PORTS["glance"],
        "NEUTRON_PORT": PORTS["neutron"],
        "REGION": REGION,
        "COMPUTE_HOST": COMPUTE_HOST,
        "SERVICE_PASSWORD": SERVICE_PASSWORD,
        "TRANSPORT_URL": f"rabbit://{RABBIT_USER}:{RABBIT_PASSWORD}@{HOST}:{PORTS['rabbitmq']}/",
    }
    authtoken = (TEMPLATES / "authtoken.inc").read_text()

    def with_auth(user: str) -> dict:
        values = dict(common, SERVICE_USER=user)
        values["AUTHTOKEN"] = string.Template(authtoken).substitute(values)
        return values

    render("keystone.conf", CONF / "keystone" / "keystone.conf", **common)
    render("glance-api.conf", CONF / "glance" / "glance-api.conf", **with_auth("glance"))
    render("placement.conf", CONF / "placement" / "placement.conf", **with_auth("placement"))
    render("nova.conf", CONF / "nova" / "nova.conf", **with_auth("nova"))
    render("neutron.conf", CONF / "neutron" / "neutron.conf", **with_auth("neutron"))
    render("ml2_conf.ini", CONF / "neutron" / "ml2_conf.ini", **common)
    for src, dst in (
        (
            VENV / "etc" / "glance" / "glance-api-paste.ini",
            CONF / "glance" / "glance-api-paste.ini",
        ),
        (VENV / "etc" / "nova" / "api-paste.ini", CONF / "nova" / "api-paste.ini"),
        (VENV / "etc" / "neutron" / "api-paste.ini", CONF / "neutron" / "api-paste.ini"),
    ):
        shutil.copyfile(src, dst)
    for name, spec in UWSGI.items():
        env_lines = "\n".join(f"env = {key}={value}" for key, value in spec["env"].items())
        render(
            "uwsgi.ini",
            CONF / "uwsgi" / f"{name}.ini",
            PORT=PORTS[name],
            MODULE=spec["module"],
            VENV=VENV,
            PROCESSES=spec.get("processes", 1),
            THREADS=spec.get("threads", 4),
            DISABLE_LOGGING="false",
            ENV_LINES=env_lines,
        )
    knobs = STATE / "knobs.json"
    if not knobs.exists():
        knobs.write_text(json.dumps(DEFAULT_KNOBS, indent=2) + "\n")
    (STATE / "settings.json").write_text(json.dumps(settings(), indent=2))
    write_clouds_yaml()


def write_clouds_yaml() -> None:
    def entry(name: str, user: str, password: str, project: str) -> str:
        return (
            f"  {name}:\n"
            f"    auth:\n"
            f"      auth_url: {ENDPOINTS['identity']}\n"
            f"      username: {user}\n"
            f"      password: {password}\n"
            f"      project_name: {project}\n"
            f"      user_domain_name: Default\n"
            f"      project_domain_name: Default\n"
            f"    region_name: {REGION}\n"
            f"    interface: public\n"
            f"    identity_api_version: 3\n"
        )

    text = "# Written by scripts/openstack/up.py: the loopback OpenStack cloud.\nclouds:\n"
    text += entry("openstack", "portal-service", ACCOUNTS["portal-service"], "portal")
    text += entry("openstack-admin", "admin", ADMIN_PASSWORD, "admin")
    text += entry("openstack-alpha-user", "alpha-user", ACCOUNTS["alpha-user"], "alpha")
    text += entry("openstack-beta-user", "beta-user", ACCOUNTS["beta-user"], "beta")
    (STATE / "clouds.yaml").write_text(text)


UWSGI = {
    "keystone": {
        "module": "keystone.wsgi.api:application",
        "env": {"OS_KEYSTONE_CONFIG_DIR": CONF / "keystone"},
        "threads": 8,
    },
    "glance": {
        "module": "glance.wsgi.api:application",
        "env": {"OS_GLANCE_CONFIG_DIR": CONF / "glance"},
        "threads": 8,
    },
    "placement": {
        "module": "placement.wsgi.api:application",
        "env": {"OS_PLACEMENT_CONFIG_DIR": CONF / "placement"},
        "threads": 4,
    },
    "nova": {
        "module": "nova.wsgi.osapi_compute:application",
        "env": {"OS_NOVA_CONFIG_DIR": CONF / "nova"},
        "threads": 8,
    },
    "neutron": {
        "module": "neutron.wsgi.api:application",
        "env": {
            "OS_NEUTRON_CONFIG_DIR": CONF / "neutron",
            "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
        },
        "threads": 8,
    },
}


# --- processes ------------------------------------------------------------------


def pid_of(name: str) -> int | None:
    """The pid of a process we started, if it still runs."""
    try:
        pid = int((RUN / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) and ours(pid) else None


def ours(pid: int) -> bool:
    """Whether pid was started by us (a stale pid file may name someone else's).

    Every process we start carries LOOPSTACK_STATE in its environment, or our
    state dir on its command line (Nova's setproctitle overwrites the
    environment block; its title keeps the --config-file path).
    """
    proc = Path(f"/proc/{pid}")
    try:
        if str(STATE).encode() in proc.joinpath("cmdline").read_bytes():
            return True
        environ = proc.joinpath("environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"LOOPSTACK_STATE={STATE}".encode() in environ


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(name: str, cmd: list, env: dict | None = None) -> int:
    """Start a long-running process in its own session; remember its pid."""
    with open(LOG / f"{name}.log", "a") as out:
        out.write(
            f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(map(str, cmd))}\n"
        )
        out.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {}), LOOPSTACK_STATE=str(STATE)),
            cwd=STATE,
            start_new_session=True,
        )
    (RUN / f"{name}.pid").write_text(f"{proc.pid}\n")
    if name in INPUTS:
        (RUN / f"{name}.inputs").write_text(inputs_digest(name))
    return proc.pid


def inputs_digest(name: str) -> str:
    """A digest of what a service reads at start: its config files and our plug-ins."""
    digest = hashlib.sha256()
    for path in INPUTS[name]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def changed_services() -> list[str]:
    """Running services started with other config files or plug-in code than now."""
    changed = []
    for name in INPUTS:
        if pid_of(name) is None:
            continue
        try:
            recorded = (RUN / f"{name}.inputs").read_text()
        except OSError:
            recorded = ""
        if recorded != inputs_digest(name):
            changed.append(name)
    return changed


def wait_until(what: str, probe, timeout: float = 60.0, name: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    missed = 0
    while time.monotonic() < deadline:
        if probe():
            return
        # Gone three looks in a row: one look can miss a process that is still in
        # execve (its /proc cmdline and environ read empty until the new image is
        # set up), which a busy machine stretches: a CI run once failed on it.
        missed = missed + 1 if name and pid_of(name) is None else 0
        if missed >= 3:
            raise SystemExit(
                f"openstack: {name} exited while starting; see {LOG / (name + '.log')}"
            )
        time.sleep(0.3)
    raise SystemExit(f"openstack: timed out waiting for {what}; see {LOG}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


MYSQL_SOCKET = RUN / "mysqld.sock"


def start_mysql() -> None:
    datadir = STATE / "mysql"
    if pid_of("mysql") and port_open(PORTS["mysql"]):
        return
    if not (datadir / "mysql").exists():
        say("initialising MariaDB's data directory")
        shutil.rmtree(datadir, ignore_errors=True)
        run(
            [
                "mariadb-install-db",
                f"--datadir={datadir}",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            log_name="mysql-install",
        )
    say(f"starting MariaDB on {HOST}:{PORTS['mysql']}")
    spawn(
        "mysql",
        [
            "mysqld_safe",
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={MYSQL_SOCKET}",
            f"--port={PORTS['mysql']}",
            f"--bind-address={HOST}",
            f"--pid-file={RUN / 'mysqld.pid'}",
            f"--log-error={LOG / 'mysqld.log'}",
            "--user=root",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=1000",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ],
    )
    wait_until(
        "MariaDB", lambda: MYSQL_SOCKET.exists() and port_open(PORTS["mysql"]), 60, name="mysql"
    )


def mysql(sql: str) -> None:
    run(["mariadb", f"--socket={MYSQL_SOCKET}", "-uroot"], input=sql, log_name="mysql-client")


def create_databases() -> None:
    if (STATE / "stamps" / "databases").exists():
        return
    statements = [
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';",
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASSWORD}';",
    ]
    for db in DATABASES:
        statements.append(f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4;")
        statements.append(f"GRANT ALL PRIVILEGES ON {db}.* TO '{DB_USER}'@'127.0.0.1';")
        statements.append(f"GRANT ALL PRIVILEGES ON {db}.* TO '{DB_USER}'@'localhost';")
    statements.append("FLUSH PRIVILEGES;")
    mysql("\n".join(statements))
    stamp("databases")


def rabbit_env() -> dict:
    base = STATE / "rabbitmq"
    return {
        "HOME": str(base),
        "RABBITMQ_HOME": "/usr/lib/rabbitmq",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(LOG / "rabbitmq"),
        "RABBITMQ_NODENAME": "loopstack@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq-dist"]),
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_PID_FILE": str(RUN / "rabbitmq-server.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
    }


def start_rabbitmq() -> None:
    if pid_of("rabbitmq") and port_open(PORTS["rabbitmq"]):
        return
    base = STATE / "rabbitmq"
    base.mkdir(parents=True, exist_ok=True)
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        "# Written by scripts/openstack/up.py\n"
        "vm_memory_high_watermark.absolute = 512MiB\n"
        "disk_free_limit.absolute = 50MB\n"
        "log.console = false\n"
    )
    say(f"starting RabbitMQ on {HOST}:{PORTS['rabbitmq']}")
    spawn("rabbitmq", [RABBIT_BIN / "rabbitmq-server"], env=rabbit_env())
    wait_until("RabbitMQ", lambda: port_open(PORTS["rabbitmq"]), 90, name="rabbitmq")
    run(
        [RABBIT_BIN / "rabbitmqctl", "await_startup", "--timeout", "60"],
        env=rabbit_env(),
        log_name="rabbitmq-ctl",
    )
    if not (STATE / "stamps" / "rabbitmq-user").exists():
        ctl = [RABBIT_BIN / "rabbitmqctl"]
        listed = run([*ctl, "list_users", "--silent"], env=rabbit_env()).stdout
        if RABBIT_USER not in listed.split():
            run(
                [*ctl, "add_user", RABBIT_USER, RABBIT_PASSWORD],
                env=rabbit_env(),
                log_name="rabbitmq-ctl",
            )
        run(
            [*ctl, "set_permissions", RABBIT_USER, ".*", ".*", ".*"],
            env=rabbit_env(),
            log_name="rabbitmq-ctl",
        )
        stamp("rabbitmq-user")


def stamp(name: str) -> None:
    (STATE / "stamps").mkdir(exist_ok=True)
    (STATE / "stamps" / name).touch()


def stamped(name: str) -> bool:
    return (STATE / "stamps" / name).exists()


def once(name: str, steps) -> None:
    """Run a list of commands once (stamped), for database migrations and keys."""
    if stamped(name):
        return
    for cmd in steps:
        run(cmd, log_name=f"setup-{name}")
    stamp(name)


def db_setup() -> None:
    """Schema migrations (in parallel: each service has its own database)."""
    db = f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mysql']}"
    kconf = ["--config-file", CONF / "keystone" / "keystone.conf"]
    nconf = ["--config-file", CONF / "nova" / "nova.conf"]
    for keys in ("fernet-keys", "credential-keys"):
        (STATE / "keystone" / keys).mkdir(parents=True, exist_ok=True)
        (STATE / "keystone" / keys).chmod(0o700)
    jobs = {
        "keystone-db": [
            [BIN / "keystone-manage", *kconf, "db_sync"],
            [
                BIN / "keystone-manage",
                *kconf,
                "fernet_setup",
                "--keystone-user",
                "root",
                "--keystone-group",
                "root",
            ],
            [
                BIN / "keystone-manage",
                *kconf,
                "credential_setup",
                "--keystone-user",
                "root",
                "--keystone-group",
                "root",
            ],
            [
                BIN / "keystone-manage",
                *kconf,
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-admin-url",
                ENDPOINTS["identity"],
                "--bootstrap-internal-url",
                ENDPOINTS["identity"],
                "--bootstrap-public-url",
                ENDPOINTS["identity"],
                "--bootstrap-region-id",
                REGION,
            ],
        ],
        "glance-db": [
            [BIN / "glance-manage", "--config-file", CONF / "glance" / "glance-api.conf", "db_sync"]
        ],
        "placement-db": [
            [
                BIN / "placement-manage",
                "--config-file",
                CONF / "placement" / "placement.conf",
                "db",
                "sync",
            ]
        ],
        "nova-db": [
            [BIN / "nova-manage", *nconf, "api_db", "sync"],
            [
                BIN / "nova-manage",
                *nconf,
                "cell_v2",
                "map_cell0",
                "--database_connection",
                f"{db}/nova_cell0",
            ],
            # create_cell is not idempotent: list first.
            [sys.executable, HERE / "up.py", "_create_cell"],
            [BIN / "nova-manage", *nconf, "db", "sync"],
        ],
        "neutron-db": [
            [
                BIN / "neutron-db-manage",
                "--config-file",
                CONF / "neutron" / "neutron.conf",
                "--config-file",
                CONF / "neutron" / "ml2_conf.ini",
                "upgrade",
                "heads",
            ]
        ],
    }
    pending = {name: steps for name, steps in jobs.items() if not stamped(name)}
    if not pending:
        return
    say(f"database migrations: {', '.join(pending)} (in parallel)")
    errors: list[BaseException] = []

    def work(name, steps):
        try:
            once(name, steps)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=item) for item in pending.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(str(errors[0]))


def create_cell() -> None:
    nconf = ["--config-file", CONF / "nova" / "nova.conf"]
    listed = run([BIN / "nova-manage", *nconf, "cell_v2", "list_cells"]).stdout
    if " cell1 " not in listed:
        run(
            [BIN / "nova-manage", *nconf, "cell_v2", "create_cell", "--name", "cell1"],
            log_name="setup-nova-db",
        )


def start_uwsgi(name: str) -> None:
    if pid_of(name) and port_open(PORTS[name]):
        return
    say(f"starting {name} API (uwsgi) on {HOST}:{PORTS[name]}")
    spawn(name, [BIN / "uwsgi", "--ini", CONF / "uwsgi" / f"{name}.ini"])


def wait_api(name: str, path: str = "/", timeout: float = 120) -> None:
    wait_until(f"{name} API", lambda: http_ok(URLS[name] + path), timeout, name=name)


NOVA_SERVICES = ["nova-conductor", "nova-scheduler", "nova-compute"]


def start_nova_service(name: str) -> None:
    if pid_of(name):
        return
    say(f"starting {name}")
    spawn(
        name,
        [
            BIN / name,
            "--config-file",
            CONF / "nova" / "nova.conf",
            "--log-file",
            LOG / f"{name}-app.log",
        ],
        env={"LOOPSTACK_KNOBS": str(STATE / "knobs.json")},
    )


def discover_hosts() -> None:
    nconf = ["--config-file", CONF / "nova" / "nova.conf"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run(
            [BIN / "nova-manage", *nconf, "cell_v2", "discover_hosts"],
            log_name="setup-discover",
            check=False,
        )
        hosts = run([BIN / "nova-manage", *nconf, "cell_v2", "list_hosts"], check=False).stdout
        if f" {COMPUTE_HOST} " in hosts:
            return
        if pid_of("nova-compute") is None:
            raise SystemExit(f"openstack: nova-compute exited; see {LOG / 'nova-compute.log'}")
        time.sleep(2)
    raise SystemExit(
        "openstack: nova-compute never registered; see var/openstack/log/nova-compute-app.log"
    )


def seed(*steps: str) -> None:
    run([BIN / "python", "-m", "loopstack.seed", STATE / "settings.json", *steps], log_name="seed")


# --- the whole cloud -------------------------------------------------------------

ALL = ["mysql", "rabbitmq", "keystone", "glance", "placement", "neutron", "nova", *NOVA_SERVICES]
NOVA_INPUTS = [CONF / "nova" / "nova.conf", HERE / "loopstack" / "virt.py"]
INPUTS = {
    "keystone": [CONF / "keystone" / "keystone.conf", CONF / "uwsgi" / "keystone.ini"],
    "glance": [CONF / "glance" / "glance-api.conf", CONF / "uwsgi" / "glance.ini"],
    "placement": [CONF / "placement" / "placement.conf", CONF / "uwsgi" / "placement.ini"],
    "neutron": [
        CONF / "neutron" / "neutron.conf",
        CONF / "neutron" / "ml2_conf.ini",
        CONF / "uwsgi" / "neutron.ini",
        HERE / "loopstack" / "ml2.py",
    ],
    "nova": [CONF / "nova" / "nova.conf", CONF / "uwsgi" / "nova.ini"],
    **{name: NOVA_INPUTS for name in NOVA_SERVICES},
}


def all_up() -> bool:
    for name in ALL:
        if pid_of(name) is None:
            return False
        if name in PORTS and not port_open(PORTS[name]):
            return False
    return True


def health_settled(timeout: float = 90.0) -> list[str]:
    """health(), asked again until it is empty or `timeout` passes: after a restart
    on old state, Nova reports nova-compute down until the new process's first
    heartbeat lands (its service row still has the old one's time)."""
    deadline = time.monotonic() + timeout
    while True:
        problems = health()
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(3)


def health() -> list[str]:
    """Problems found by asking every API something (empty when healthy)."""
    problems = []
    for name, path in (
        ("keystone", "/v3"),
        ("glance", "/versions"),
        ("placement", "/"),
        ("nova", "/"),
        ("neutron", "/"),
    ):
        if not http_ok(URLS[name] + path):
            problems.append(f"{name} API does not answer")
    if problems:
        return problems
    token = None
    try:
        body = json.dumps(
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": "portal-service",
                                "domain": {"id": "default"},
                                "password": ACCOUNTS["portal-service"],
                            }
                        },
                    },
                    "scope": {"project": {"name": "portal", "domain": {"id": "default"}}},
                }
            }
        ).encode()
        request = urllib.request.Request(
            ENDPOINTS["identity"] + "/auth/tokens",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            token = response.headers["X-Subject-Token"]
    except OSError as error:
        return [f"keystone: no token for portal-service ({error})"]
    for name, url in (
        ("nova", ENDPOINTS["compute"] + "/servers/detail?limit=1"),
        ("glance", ENDPOINTS["image"] + "/v2/images?limit=1"),
        ("neutron", ENDPOINTS["network"] + "/v2.0/networks?limit=1"),
        ("nova", ENDPOINTS["compute"] + "/os-services"),
    ):
        try:
            request = urllib.request.Request(url, headers={"X-Auth-Token": token})
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.load(response)
        except (OSError, ValueError) as error:
            problems.append(f"{name}: {url} failed ({error})")
            continue
        if url.endswith("/os-services"):
            for service in payload.get("services", []):
                if service["state"] != "up":
                    problems.append(f"{service['binary']} is {service['state']}")
    return problems


def up() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    for folder in (LOG, RUN, CONF):
        folder.mkdir(parents=True, exist_ok=True)
    ensure_debian_packages()
    ensure_venv()
    write_configs()
    changed = changed_services()
    if changed:
        say(f"configuration or plug-in changed since start: restarting {', '.join(changed)}")
        stop(changed)
    if all_up() and stamped("seeded") and (STATE / "cloud.json").exists():
        problems = health()
        if not problems:
            say("already up and healthy")
            finish()
            return
        say("up, but: " + "; ".join(problems) + " — starting what is missing")
    for name in (
        "glance/images",
        "glance/staging",
        "glance/tasks",
        "glance/locks",
        "nova/locks",
        "neutron/locks",
        "stamps",
    ):
        (STATE / name).mkdir(parents=True, exist_ok=True)
    start_mysql()
    start_rabbitmq()
    create_databases()
    db_setup()
    start_uwsgi("keystone")
    wait_api("keystone", "/v3")
    if not stamped("identity"):
        say("seeding identity: projects, users, roles, service catalog")
        seed("identity")
        stamp("identity")
    for name in ("glance", "placement", "neutron", "nova"):
        start_uwsgi(name)
    for name in NOVA_SERVICES:
        start_nova_service(name)
    wait_api("placement")
    wait_api("glance", "/versions")
    wait_api("neutron")
    wait_api("nova")
    discover_hosts()
    say("seeding resources: network, flavors, images")
    seed("resources")
    stamp("seeded")
    problems = health_settled()
    if problems:
        raise SystemExit("openstack: unhealthy after start: " + "; ".join(problems))
    finish()


def finish() -> None:
    say(
        f"up: clouds.yaml is {STATE / 'clouds.yaml'} (entries: openstack, openstack-admin, openstack-alpha-user, openstack-beta-user)"
    )
    say(f"ids and endpoints: {STATE / 'cloud.json'}; knobs: {STATE / 'knobs.json'}; logs: {LOG}")


def group_rss_mib(pgid: int) -> float:
    """Resident memory of a process group (the service and its workers), MiB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def status() -> int:
    width = max(map(len, ALL))
    down = 0
    total = 0.0
    for name in ALL:
        pid = pid_of(name)
        port = PORTS.get(name)
        listening = port_open(port) if port else None
        if pid and listening is not False:
            state = "up"
        else:
            state = "DOWN"
            down += 1
        rss = group_rss_mib(pid) if pid else 0.0
        total += rss
        where = f"{HOST}:{port}" if port else ""
        print(f"{name:<{width}}  {state:<4}  pid {pid or '-':<8} {rss:7.0f} MiB  {where}")
    print(f"{'total':<{width}}  {'':<4}      {'':<8} {total:7.0f} MiB")
    return 1 if down else 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop(names: list[str] | None = None) -> None:
    """SIGTERM to every process group we started (RabbitMQ via rabbitmqctl), then wait."""
    groups = {}
    for name in reversed(names or ALL):
        pid = pid_of(name)
        if pid is None:
            (RUN / f"{name}.pid").unlink(missing_ok=True)
            continue
        groups[name] = pid
    if "rabbitmq" in groups:
        run(
            [RABBIT_BIN / "rabbitmqctl", "shutdown", "--timeout", "30"],
            env=rabbit_env(),
            check=False,
        )
    # mysqld_safe's child, mariadbd, may outlive the wrapper for a moment.
    mysqld = None
    if "mysql" in groups:
        with contextlib.suppress(OSError, ValueError, IndexError):
            mysqld = int((RUN / "mysqld.pid").read_text().split()[0])
    for name, pid in groups.items():
        say(f"stopping {name} (pid {pid})")
        # uwsgi quits at once on SIGINT; on SIGTERM nova-api's waits for its threads.
        sig = signal.SIGINT if name in UWSGI else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
    waited = [pid for pid in groups.values()] + ([mysqld] if mysqld else [])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in waited):
        time.sleep(0.2)
    for name, pid in groups.items():
        if alive(pid):
            say(f"{name} (pid {pid}) ignored SIGTERM: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        (RUN / f"{name}.pid").unlink(missing_ok=True)
    # epmd, started by RabbitMQ on our own port, outlives it.
    if "rabbitmq" in groups and shutil.which("epmd"):
        subprocess.run(
            ["epmd", "-kill"],
            env=dict(os.environ, ERL_EPMD_PORT=str(PORTS["epmd"])),
            capture_output=True,
        )
    say("stopped" if groups else "nothing was running")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    if command == "up":
        up()
    elif command == "status":
        return status()
    elif command == "stop":
        stop()
    elif command == "_create_cell":
        create_cell()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
