from axes.utils import reset as axes_reset
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from portal.models import Job, Membership, OidcIdentity, Project, Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("display_name", "name", "last_sync_at", "unreachable_since")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "site", "openstack_id")
    list_filter = ("site",)
    search_fields = ("name", "openstack_id")
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    # "source": a sign-in through the identity provider changes only "oidc" ones; set
    # one to "manual" to keep it whatever the provider's claim says.
    list_display = ("user", "project", "role", "source")
    list_filter = ("role", "source", "project__site")


@admin.register(OidcIdentity)
class OidcIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "issuer", "subject", "last_sign_in_at")
    search_fields = ("user__username", "subject")
    readonly_fields = ("created_at", "last_sign_in_at")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "actor", "project", "created_at", "finished_at")
    list_filter = ("kind", "status")
    readonly_fields = ("steps", "state", "params", "result")


# Users get an action to lift a login lockout (django-axes) before it expires.
User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    actions = ("unlock_logins",)

    @admin.action(description="Unlock logins (after too many wrong passwords)")
    def unlock_logins(self, request, queryset):
        unlocked = sum(axes_reset(username=user.get_username()) for user in queryset)
        self.message_user(request, f"Removed {unlocked} failed-login record(s); they may log in.")
