"""Keystone v3 subset: discovery, password/token auth, catalog, projects, users."""

import datetime
import hashlib
import uuid

from . import clock
from .web import ApiError, Response

IDENTITY_VERSION = "v3.14"
TOKEN_LIFETIME = datetime.timedelta(hours=24)
DOMAIN = {"id": "default", "name": "Default"}
REGION = "RegionOne"

# Keystone's default implied roles: admin -> member -> reader. Tokens list the
# implied roles too, and policies check for them.
IMPLIED = {
    "admin": ["admin", "member", "reader"],
    "member": ["member", "reader"],
    "reader": ["reader"],
}


def role_id(name):
    return uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud:role:{name}").hex


class AuthContext:
    def __init__(
        self,
        token_id,
        user_id,
        user_name,
        project_id,
        project_name,
        roles,
        expires_at,
        issued_at,
        audit_id,
        methods,
    ):
        self.token_id = token_id
        self.user_id = user_id
        self.user_name = user_name
        self.project_id = project_id
        self.project_name = project_name
        self.roles = roles
        self.is_admin = "admin" in roles
        self.expires_at = expires_at
        self.issued_at = issued_at
        self.audit_id = audit_id
        self.methods = methods


def effective_roles(store, user_id, project_id):
    if not project_id:
        return []
    rows = store.query(
        "SELECT role FROM role_assignments WHERE user_id = ? AND project_id = ?",
        (user_id, project_id),
    )
    roles = []
    for row in rows:
        for role in IMPLIED.get(row["role"], [row["role"]]):
            if role not in roles:
                roles.append(role)
    return roles


def validate_token(store, token_id):
    row = store.one(
        "SELECT t.*, u.name AS user_name, u.enabled AS user_enabled, p.name AS project_name "
        "FROM tokens t JOIN users u ON u.id = t.user_id "
        "LEFT JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
        (token_id,),
    )
    if row is None or row["revoked"] or not row["user_enabled"]:
        return None
    if row["expires_at"] <= clock.now_db():
        return None
    roles = effective_roles(store, row["user_id"], row["project_id"])
    if row["project_id"] and not roles:
        return None
    return AuthContext(
        row["id"],
        row["user_id"],
        row["user_name"],
        row["project_id"],
        row["project_name"],
        roles,
        row["expires_at"],
        row["issued_at"],
        row["audit_id"],
        row["methods"].split(","),
    )


# -- discovery -------------------------------------------------------------------


def _version_entry(req):
    return {
        "id": IDENTITY_VERSION,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{req.base_url}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def versions(req):
    return Response(
        300,
        {"versions": {"values": [_version_entry(req)]}},
        {"Location": f"{req.base_url}/identity/v3/"},
    )


def version_v3(req):
    return Response(200, {"version": _version_entry(req)})


# -- catalog -----------------------------------------------------------------------


def _endpoint_id(service, interface):
    return uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud:endpoint:{service}:{interface}").hex


def catalog(base_url):
    services = [
        ("identity", "keystone", f"{base_url}/identity"),
        ("compute", "nova", f"{base_url}/compute/v2.1"),
        ("image", "glance", f"{base_url}/image"),
        ("network", "neutron", f"{base_url}/networking"),
    ]
    entries = []
    for stype, name, url in services:
        entries.append(
            {
                "type": stype,
                "name": name,
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"devcloud:service:{stype}").hex,
                "endpoints": [
                    {
                        "id": _endpoint_id(stype, iface),
                        "interface": iface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }
                    for iface in ("public", "internal", "admin")
                ],
            }
        )
    return entries


def _keystone_time(value):
    return value[:19] + ".000000Z"


def token_body(req, ctx, include_catalog=True):
    token = {
        "methods": ctx.methods,
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": dict(DOMAIN),
            "password_expires_at": None,
        },
        "audit_ids": [ctx.audit_id],
        "expires_at": _keystone_time(ctx.expires_at),
        "issued_at": _keystone_time(ctx.issued_at),
    }
    if ctx.project_id:
        token["project"] = {"id": ctx.project_id, "name": ctx.project_name, "domain": dict(DOMAIN)}
        token["is_domain"] = False
        token["roles"] = [{"id": role_id(r), "name": r} for r in ctx.roles]
        if include_catalog:
            token["catalog"] = catalog(req.base_url)
    elif include_catalog:
        token["catalog"] = []
    return {"token": token}


# -- token issue / validate / revoke -----------------------------------------------


def _unauthorized(message="The request you have made requires authentication."):
    return ApiError(401, message)


def _find_domain(ref):
    if not isinstance(ref, dict):
        raise ApiError(
            400,
            "Expecting to find domain in user/project - the server could "
            "not comply with the request since it is either malformed or "
            "otherwise incorrect.",
        )
    if "id" in ref:
        if ref["id"] != DOMAIN["id"]:
            raise _unauthorized(f"Could not find domain: {ref['id']}.")
    elif "name" in ref:
        if ref["name"] != DOMAIN["name"]:
            raise _unauthorized(f"Could not find domain: {ref['name']}.")
    else:
        raise ApiError(400, "Expecting to find id or name in domain.")
    return DOMAIN["id"]


def _resolve_user(store, user):
    if not isinstance(user, dict):
        raise ApiError(400, "Expecting to find user in password.")
    if "id" in user:
        row = store.one("SELECT * FROM users WHERE id = ?", (user["id"],))
    elif "name" in user:
        _find_domain(user.get("domain"))
        row = store.one("SELECT * FROM users WHERE name = ?", (user["name"],))
    else:
        raise ApiError(400, "Expecting to find id or name in user.")
    if row is None or not row["enabled"]:
        raise _unauthorized()
    return row


def _resolve_project(store, project):
    if not isinstance(project, dict):
        raise ApiError(400, "Expecting to find project in scope.")
    if "id" in project:
        row = store.one("SELECT * FROM projects WHERE id = ?", (project["id"],))
        ref = project["id"]
    elif "name" in project:
        _find_domain(project.get("domain"))
        row = store.one("SELECT * FROM projects WHERE name = ?", (project["name"],))
        ref = project["name"]
    else:
        raise ApiError(400, "Expecting to find id or name in project.")
    if row is None or not row["enabled"]:
        raise _unauthorized(f"Could not find project: {ref}.")
    return row


def issue_token(req):
    store = req.app.store
    body = req.json()
    auth = body.get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise ApiError(400, "Expecting to find identity in auth.")
    ident = auth["identity"]
    methods = ident.get("methods")
    if not isinstance(methods, list) or not methods:
        raise ApiError(400, "Expecting to find methods in identity.")
    if "password" in methods:
        pw = ident.get("password") or {}
        user = _resolve_user(store, pw.get("user"))
        given = (pw.get("user") or {}).get("password")
        if not isinstance(given, str) or not _password_ok(user["password"], given):
            raise _unauthorized()
        user_id = user["id"]
        inherited_project = None
    elif "token" in methods:
        tok = (ident.get("token") or {}).get("id")
        old = validate_token(store, tok) if tok else None
        if old is None:
            raise _unauthorized()
        user_id = old.user_id
        inherited_project = old.project_id
    else:
        raise _unauthorized(f"Unsupported authentication methods: {methods}")
    user = store.one("SELECT * FROM users WHERE id = ?", (user_id,))
    scope = auth.get("scope")
    project_id = None
    if isinstance(scope, dict) and "project" in scope:
        project_id = _resolve_project(store, scope["project"])["id"]
    elif scope in (None, "unscoped"):
        project_id = user["default_project_id"] if scope is None else None
        if "token" in methods and scope is None:
            project_id = inherited_project
    else:
        raise ApiError(400, "devcloud only supports project-scoped or unscoped tokens.")
    if project_id and not effective_roles(store, user_id, project_id):
        if isinstance(scope, dict):
            raise _unauthorized(f"User {user_id} has no access to project {project_id}")
        project_id = None
    now = clock.now_ts()
    issued = clock.ts_to_db(now)
    expires = clock.ts_to_db(now + TOKEN_LIFETIME.total_seconds())
    token_id = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex
    audit_id = uuid.uuid4().hex[:22]
    with store.write() as conn:
        conn.execute(
            "INSERT INTO tokens (id, user_id, project_id, methods, issued_at, expires_at, audit_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, user_id, project_id, ",".join(methods), issued, expires, audit_id),
        )
    ctx = validate_token(store, token_id)
    req.ctx = ctx
    include_catalog = req.param("nocatalog") is None
    return Response(201, token_body(req, ctx, include_catalog), {"X-Subject-Token": token_id})


def _password_ok(stored, given):
    return hashlib.sha256(given.encode()).hexdigest() == stored


def hash_password(password):
    return hashlib.sha256(password.encode()).hexdigest()


def _subject(req):
    subject = req.header("X-Subject-Token")
    if not subject:
        raise ApiError(400, "X-Subject-Token header is required.")
    ctx = validate_token(req.app.store, subject)
    if ctx is None:
        raise ApiError(404, f"Could not find token: {subject}.")
    if not req.ctx.is_admin and ctx.user_id != req.ctx.user_id:
        raise ApiError(
            403, "You are not authorized to perform the requested action: identity:validate_token."
        )
    return subject, ctx


def check_token(req):
    subject, ctx = _subject(req)
    include_catalog = req.param("nocatalog") is None
    return Response(200, token_body(req, ctx, include_catalog), {"X-Subject-Token": subject})


def revoke_token(req):
    subject, _ = _subject(req)
    with req.app.store.write() as conn:
        conn.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (subject,))
    return Response(204)


def auth_catalog(req):
    return Response(
        200,
        {
            "catalog": catalog(req.base_url),
            "links": {
                "self": f"{req.base_url}/identity/v3/auth/catalog",
                "previous": None,
                "next": None,
            },
        },
    )


# -- projects, users, domains, roles -------------------------------------------------


def project_view(req, row):
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "domain_id": row["domain_id"],
        "parent_id": row["domain_id"],
        "enabled": bool(row["enabled"]),
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": f"{req.base_url}/identity/v3/projects/{row['id']}"},
    }


def user_view(req, row):
    view = {
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "enabled": bool(row["enabled"]),
        "default_project_id": row["default_project_id"],
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{req.base_url}/identity/v3/users/{row['id']}"},
    }
    if row["email"]:
        view["email"] = row["email"]
    return view


def _list_links(req, collection):
    url = f"{req.base_url}/identity/v3/{collection}"
    if req.query_string:
        url += "?" + req.query_string
    return {"self": url, "previous": None, "next": None}


def _forbid(action):
    return ApiError(403, f"You are not authorized to perform the requested action: {action}.")


def _bool_filter(value):
    return value.lower() in ("true", "1", "yes")


def list_projects(req):
    if not req.ctx.is_admin:
        raise _forbid("identity:list_projects")
    sql = "SELECT * FROM projects WHERE 1 = 1"
    args = []
    if req.param("name") is not None:
        sql += " AND name = ?"
        args.append(req.param("name"))
    if req.param("domain_id") is not None:
        sql += " AND domain_id = ?"
        args.append(req.param("domain_id"))
    if req.param("enabled") is not None:
        sql += " AND enabled = ?"
        args.append(1 if _bool_filter(req.param("enabled")) else 0)
    rows = req.app.store.query(sql + " ORDER BY name", args)
    return Response(
        200,
        {"projects": [project_view(req, r) for r in rows], "links": _list_links(req, "projects")},
    )


def get_project(req, project_id):
    row = req.app.store.one("SELECT * FROM projects WHERE id = ?", (project_id,))
    if row is None:
        if not req.ctx.is_admin:
            raise _forbid("identity:get_project")
        raise ApiError(404, f"Could not find project: {project_id}.")
    if not req.ctx.is_admin and row["id"] != req.ctx.project_id:
        raise _forbid("identity:get_project")
    return Response(200, {"project": project_view(req, row)})


def _user_projects(req, user_id):
    return req.app.store.query(
        "SELECT DISTINCT p.* FROM projects p JOIN role_assignments r ON r.project_id = p.id "
        "WHERE r.user_id = ? AND p.enabled = 1 ORDER BY p.name",
        (user_id,),
    )


def auth_projects(req):
    rows = _user_projects(req, req.ctx.user_id)
    return Response(
        200,
        {
            "projects": [project_view(req, r) for r in rows],
            "links": _list_links(req, "auth/projects"),
        },
    )


def user_projects(req, user_id):
    if not req.ctx.is_admin and user_id != req.ctx.user_id:
        raise _forbid("identity:list_user_projects")
    if req.app.store.one("SELECT id FROM users WHERE id = ?", (user_id,)) is None:
        raise ApiError(404, f"Could not find user: {user_id}.")
    rows = _user_projects(req, user_id)
    return Response(
        200,
        {
            "projects": [project_view(req, r) for r in rows],
            "links": _list_links(req, f"users/{user_id}/projects"),
        },
    )


def list_users(req):
    if not req.ctx.is_admin:
        raise _forbid("identity:list_users")
    sql = "SELECT * FROM users WHERE 1 = 1"
    args = []
    if req.param("name") is not None:
        sql += " AND name = ?"
        args.append(req.param("name"))
    rows = req.app.store.query(sql + " ORDER BY name", args)
    return Response(
        200, {"users": [user_view(req, r) for r in rows], "links": _list_links(req, "users")}
    )


def get_user(req, user_id):
    if not req.ctx.is_admin and user_id != req.ctx.user_id:
        raise _forbid("identity:get_user")
    row = req.app.store.one("SELECT * FROM users WHERE id = ?", (user_id,))
    if row is None:
        raise ApiError(404, f"Could not find user: {user_id}.")
    return Response(200, {"user": user_view(req, row)})


def _domain_view(req):
    return dict(
        DOMAIN,
        description="The default domain",
        enabled=True,
        tags=[],
        options={},
        links={"self": f"{req.base_url}/identity/v3/domains/default"},
    )


def list_domains(req):
    name = req.param("name")
    domains = [] if name not in (None, DOMAIN["name"]) else [_domain_view(req)]
    return Response(200, {"domains": domains, "links": _list_links(req, "domains")})


def get_domain(req, domain_id):
    if domain_id != DOMAIN["id"]:
        raise ApiError(404, f"Could not find domain: {domain_id}.")
    return Response(200, {"domain": _domain_view(req)})


def list_roles(req):
    names = sorted(IMPLIED)
    if req.param("name") is not None:
        names = [n for n in names if n == req.param("name")]
    roles = [
        {
            "id": role_id(n),
            "name": n,
            "domain_id": None,
            "description": None,
            "options": {},
            "links": {"self": f"{req.base_url}/identity/v3/roles/{role_id(n)}"},
        }
        for n in names
    ]
    return Response(200, {"roles": roles, "links": _list_links(req, "roles")})


def role_assignments(req):
    if not req.ctx.is_admin:
        raise _forbid("identity:list_role_assignments")
    sql = "SELECT * FROM role_assignments WHERE 1 = 1"
    args = []
    if req.param("user.id"):
        sql += " AND user_id = ?"
        args.append(req.param("user.id"))
    if req.param("scope.project.id"):
        sql += " AND project_id = ?"
        args.append(req.param("scope.project.id"))
    rows = req.app.store.query(sql + " ORDER BY user_id, project_id, role", args)
    items = [
        {
            "user": {"id": r["user_id"]},
            "scope": {"project": {"id": r["project_id"]}},
            "role": {"id": role_id(r["role"]), "name": r["role"]},
            "links": {
                "assignment": f"{req.base_url}/identity/v3/projects/{r['project_id']}"
                f"/users/{r['user_id']}/roles/{role_id(r['role'])}"
            },
        }
        for r in rows
    ]
    return Response(200, {"role_assignments": items, "links": _list_links(req, "role_assignments")})


def register(router):
    router.add("GET", "/?", versions, auth=False)
    router.add("GET", "/v3/?", version_v3, auth=False)
    router.add("POST", "/v3/auth/tokens", issue_token, auth=False)
    router.add("GET", "/v3/auth/tokens", check_token)
    router.add("DELETE", "/v3/auth/tokens", revoke_token)
    router.add("GET", "/v3/auth/catalog", auth_catalog)
    router.add("GET", "/v3/auth/projects", auth_projects)
    router.add("GET", "/v3/projects", list_projects)
    router.add("GET", "/v3/projects/(?P<project_id>[^/]+)", get_project)
    router.add("GET", "/v3/users", list_users)
    router.add("GET", "/v3/users/(?P<user_id>[^/]+)", get_user)
    router.add("GET", "/v3/users/(?P<user_id>[^/]+)/projects", user_projects)
    router.add("GET", "/v3/domains", list_domains)
    router.add("GET", "/v3/domains/(?P<domain_id>[^/]+)", get_domain)
    router.add("GET", "/v3/roles", list_roles)
    router.add("GET", "/v3/role_assignments", role_assignments)
