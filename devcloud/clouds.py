"""clouds.yaml text for a devcloud site, written by hand to avoid a YAML dependency."""

from . import seed


def _quote(value):
    # Double-quoted YAML scalars need only backslash and quote escaping here.
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _entry(name, auth_url, username, password, project):
    return "\n".join(
        [
            f"  {name}:",
            "    auth:",
            f"      auth_url: {_quote(auth_url)}",
            f"      username: {_quote(username)}",
            f"      password: {_quote(password)}",
            f"      project_name: {_quote(project)}",
            '      user_domain_name: "Default"',
            '      project_domain_id: "default"',
            '    region_name: "RegionOne"',
            "    identity_api_version: 3",
            '    interface: "public"',
        ]
    )


def clouds_yaml(port, host="127.0.0.1", name="devcloud", profile="primary", entries_only=False):
    auth_url = f"http://{host}:{port}/identity"
    entries = [_entry(name, auth_url, seed.ADMIN_USER, seed.ADMIN_PASSWORD, seed.ADMIN_PROJECT)]
    for project in seed.demo_projects(profile):
        entries.append(
            _entry(
                f"{name}-{project}",
                auth_url,
                seed.member_user(project),
                seed.member_password(project),
                project,
            )
        )
    body = "\n".join(entries) + "\n"
    return body if entries_only else "clouds:\n" + body


def admin_credentials(port, host="127.0.0.1"):
    """Keyword arguments for openstack.connect() as the admin service account."""
    return {
        "auth_url": f"http://{host}:{port}/identity",
        "username": seed.ADMIN_USER,
        "password": seed.ADMIN_PASSWORD,
        "project_name": seed.ADMIN_PROJECT,
        "user_domain_name": "Default",
        "project_domain_id": "default",
        "region_name": "RegionOne",
        "identity_api_version": "3",
    }


def member_credentials(project, port, host="127.0.0.1"):
    creds = admin_credentials(port, host)
    creds.update(
        username=seed.member_user(project),
        password=seed.member_password(project),
        project_name=project,
    )
    return creds
