"""Opt-in test accounts: projects that each have a member and a reader user.

Test suites that run with pre-provisioned credentials (tempest's accounts.yaml)
ask for several personas inside one project: a member that creates things and
a reader that lists them. The demo catalog has one member per project and no
readers, so `python -m devcloud accounts` adds dedicated, empty projects for
such suites. Nothing here runs unless asked for, so the demo catalog and its
tests stay exactly as seeded.
"""

from . import seed
from .identity import hash_password
from .store import dumps


def project_name(prefix, index):
    return f"{prefix}-{index}"


def user_name(project, persona):
    return f"{project}-{persona}"


def password(project, persona):
    return f"{project}-{persona}-devcloud"


PERSONAS = ("member", "reader")


def ensure_accounts(store, count, prefix="tempest", profile="primary"):
    """Create `count` projects with a member and a reader user each (idempotent).

    Returns one dict per account: username, password, project_name, role.
    The admin service account also gets the admin role on each project, as it
    has on the demo projects, so it can scope in and clean up.
    """
    seed.ensure_seeded(store, profile)
    profile = store.get_meta("seeded_profile") or profile
    admin = store.one("SELECT id FROM users WHERE name = ?", (seed.ADMIN_USER,))
    accounts = []
    with store.write() as conn:
        for index in range(1, count + 1):
            project = project_name(prefix, index)
            pid = seed.project_id(profile, project)
            conn.execute(
                "INSERT OR IGNORE INTO projects (id, name, description, quota) VALUES (?, ?, ?, ?)",
                (pid, project, f"Test project {project} (member and reader accounts)", dumps({})),
            )
            if admin is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO role_assignments VALUES (?, ?, 'admin')",
                    (admin["id"], pid),
                )
            for persona in PERSONAS:
                name = user_name(project, persona)
                uid = seed.user_id(profile, name)
                conn.execute(
                    "INSERT OR IGNORE INTO users (id, name, password, default_project_id, email) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (uid, name, hash_password(password(project, persona)), pid, None),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO role_assignments VALUES (?, ?, ?)", (uid, pid, persona)
                )
                accounts.append(
                    {
                        "username": name,
                        "password": password(project, persona),
                        "project_name": project,
                        "role": persona,
                    }
                )
    return accounts


def _quote(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def tempest_accounts_yaml(accounts, domain="Default"):
    """tempest's accounts.yaml for these accounts (written by hand: no YAML dependency)."""
    lines = []
    for account in accounts:
        lines += [
            f"- username: {_quote(account['username'])}",
            f"  project_name: {_quote(account['project_name'])}",
            f"  password: {_quote(account['password'])}",
            f"  user_domain_name: {_quote(domain)}",
            f"  project_domain_name: {_quote(domain)}",
            f"  roles: [{_quote(account['role'])}]",
        ]
    return "\n".join(lines) + "\n"
