from django.contrib import admin

from portal.models import Job, Membership, Project, Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["display_name", "name", "last_sync_at", "unreachable_since"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "openstack_id"]
    list_filter = ["site"]
    search_fields = ["name", "openstack_id"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project__site"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "actor", "project", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    readonly_fields = ["steps", "state", "params", "result"]
