"""SQLite schema and connection handling.

One database file per data directory, in WAL mode so that many reader threads
never block the single writer. Every thread gets its own connection (sqlite3
connections must not be shared across threads); write transactions start with
BEGIN IMMEDIATE so concurrent writers queue on busy_timeout instead of failing
with a lock upgrade error half-way through.
"""

import contextlib
import json
import os
import re
import sqlite3
import threading

DB_NAME = "devcloud.sqlite3"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    domain_id TEXT NOT NULL DEFAULT 'default',
    enabled INTEGER NOT NULL DEFAULT 1,
    quota TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    domain_id TEXT NOT NULL DEFAULT 'default',
    default_project_id TEXT,
    email TEXT,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS role_assignments (
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id, role)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    project_id TEXT,
    methods TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS flavors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    ram INTEGER NOT NULL,
    disk INTEGER NOT NULL,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    swap INTEGER NOT NULL DEFAULT 0,
    rxtx_factor REAL NOT NULL DEFAULT 1.0,
    is_public INTEGER NOT NULL DEFAULT 1,
    disabled INTEGER NOT NULL DEFAULT 0,
    description TEXT,
    extra_specs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flavor_access (
    flavor_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);
CREATE TABLE IF NOT EXISTS servers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    flavor_id TEXT NOT NULL,
    flavor TEXT NOT NULL,
    image_id TEXT NOT NULL DEFAULT '',
    image_props TEXT NOT NULL DEFAULT '{}',
    vm_state TEXT NOT NULL,
    task_state TEXT,
    power_state INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    launched_at TEXT,
    terminated_at TEXT,
    deleted_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    description TEXT,
    key_name TEXT,
    availability_zone TEXT NOT NULL DEFAULT 'nova',
    network TEXT,
    ip TEXT,
    host TEXT NOT NULL DEFAULT 'devcloud-compute-1',
    fault TEXT,
    disk_used_bytes INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    locked_reason TEXT,
    reservation_id TEXT NOT NULL DEFAULT '',
    launch_index INTEGER NOT NULL DEFAULT 0,
    security_groups TEXT NOT NULL DEFAULT '["default"]',
    network_id TEXT,
    console TEXT
);
CREATE INDEX IF NOT EXISTS servers_project_created
    ON servers (project_id, deleted, created_at, id);
CREATE INDEX IF NOT EXISTS servers_created ON servers (created_at, id);
CREATE INDEX IF NOT EXISTS servers_updated ON servers (updated_at);
CREATE INDEX IF NOT EXISTS servers_name ON servers (name);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,
    visibility TEXT NOT NULL,
    owner TEXT,
    size INTEGER,
    virtual_size INTEGER,
    min_disk INTEGER NOT NULL DEFAULT 0,
    min_ram INTEGER NOT NULL DEFAULT 0,
    disk_format TEXT,
    container_format TEXT,
    protected INTEGER NOT NULL DEFAULT 0,
    os_hidden INTEGER NOT NULL DEFAULT 0,
    checksum TEXT,
    os_hash_algo TEXT,
    os_hash_value TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    data TEXT
);
CREATE INDEX IF NOT EXISTS images_created ON images (created_at, id);
CREATE INDEX IF NOT EXISTS images_updated ON images (updated_at, id);
CREATE INDEX IF NOT EXISTS images_owner ON images (owner, created_at, id);
CREATE INDEX IF NOT EXISTS images_visibility ON images (visibility, created_at, id);
CREATE INDEX IF NOT EXISTS images_name ON images (COALESCE(name, ''), created_at, id);
CREATE INDEX IF NOT EXISTS images_status ON images (status);
CREATE INDEX IF NOT EXISTS images_size ON images (COALESCE(size, -1), created_at, id);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    project_id TEXT NOT NULL,
    shared INTEGER NOT NULL DEFAULT 0,
    external INTEGER NOT NULL DEFAULT 0,
    admin_state_up INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS keypairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'ssh',
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX IF NOT EXISTS transitions_due ON transitions (due);
CREATE INDEX IF NOT EXISTS transitions_object ON transitions (object_id);
"""

# Columns added after data directories were first created: (table, column, declaration).
# CREATE TABLE IF NOT EXISTS leaves an old table as it was, so they are added here.
ADDED_COLUMNS = (
    ("servers", "console", "TEXT"),
    ("servers", "locked_reason", "TEXT"),
    ("servers", "network_id", "TEXT"),
    # Nova's system_metadata shelved_image_id: the image an unshelve boots from.
    ("servers", "shelved_image_id", "TEXT"),
)


def _add_missing_columns(conn):
    for table, column, decl in ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def _regexp(pattern, value):
    if value is None:
        return False
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


class Store:
    """Opens per-thread connections to the data directory's database."""

    def __init__(self, data_dir):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.path = os.path.join(self.data_dir, DB_NAME)
        self.blob_dir = os.path.join(self.data_dir, "blobs")
        os.makedirs(self.blob_dir, exist_ok=True)
        self._local = threading.local()
        conn = self.connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        _add_missing_columns(conn)
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def connect(self):
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        return conn

    @property
    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
        return conn

    def close_thread_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    @contextlib.contextmanager
    def write(self):
        """A write transaction on this thread's connection (re-entrant)."""
        conn = self.conn
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield conn
            finally:
                self._local.depth = depth
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def query(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql, params=()):
        return self.conn.execute(sql, params).fetchone()

    def get_meta(self, key, default=None):
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else default

    def set_meta(self, key, value):
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def blob_path(self, image_id):
        return os.path.join(self.blob_dir, image_id)


def loads(text, default=None):
    if text is None:
        return default
    return json.loads(text)


def dumps(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def keyset_condition(sort, marker_values):
    """SQL that selects rows strictly after the marker row in `sort` order.

    `sort` is a list of (sql_expression, 'asc'|'desc'); expressions must never
    be NULL (callers wrap nullable columns in COALESCE) so that equality and
    ordering agree with ORDER BY.
    """
    clauses = []
    params = []
    # A redundant range on the leading key lets SQLite seek in an index on it
    # instead of evaluating the OR for every row before the marker.
    lead_op = "<=" if sort[0][1] == "desc" else ">="
    lead = f"{sort[0][0]} {lead_op} ?"
    for i, (expr, direction) in enumerate(sort):
        parts = []
        for j in range(i):
            parts.append(f"{sort[j][0]} = ?")
            params.append(marker_values[j])
        op = "<" if direction == "desc" else ">"
        parts.append(f"{expr} {op} ?")
        params.append(marker_values[i])
        clauses.append("(" + " AND ".join(parts) + ")")
    return f"({lead} AND (" + " OR ".join(clauses) + "))", [marker_values[0], *params]


def order_by(sort):
    return ", ".join(f"{expr} {direction.upper()}" for expr, direction in sort)
