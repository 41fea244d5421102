"""The claims devidp releases: from the config file, read at every request for them."""

from django.utils.translation import gettext_lazy as _
from oidc_provider.lib.claims import ScopeClaims

from devidp.config import user_entry


def userinfo(claims: dict, user) -> dict:
    entry = user_entry(user.username)
    given, family = entry.get("given_name", ""), entry.get("family_name", "")
    claims.update(
        {
            "name": " ".join(part for part in (given, family) if part),
            "given_name": given,
            "family_name": family,
            "preferred_username": user.username,
            "email": entry.get("email", ""),
            "email_verified": True,
        }
    )
    claims["eduperson_entitlement"] = list(entry.get("entitlements", []))
    return claims


class EntitlementScopeClaims(ScopeClaims):
    info_eduperson_entitlement = (
        _("Group memberships"),
        _("The projects and groups you belong to (eduperson_entitlement)."),
    )

    def scope_eduperson_entitlement(self) -> dict:
        return {"eduperson_entitlement": self.userinfo.get("eduperson_entitlement", [])}
