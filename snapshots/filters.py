from __future__ import annotations

import django_filters
from django import forms
from django.utils.translation import gettext_lazy

from images.models import boot_verdict_q
from portal.filters import (
    BoundedFilterSet,
    few_matches_first,
    id_prefix_q,
    name_starts,
    quick_search,
    style_form,
)
from portal.models import Project, Site
from snapshots.models import Snapshot

BOOT_CHOICES = [
    ("verified", gettext_lazy("boots")),
    ("failed", gettext_lazy("does not boot")),
    ("untested", gettext_lazy("not verified")),
]

STATUS_CHOICES = [
    ("active", "active"),
    ("queued", "queued"),
    ("saving", "saving"),
    ("killed", gettext_lazy("failed")),
]


class SnapshotFilterSet(BoundedFilterSet):
    q = django_filters.CharFilter(
        method="filter_quick",
        label=gettext_lazy("Quick search"),
        widget=forms.TextInput(
            attrs={"placeholder": gettext_lazy("Name, project or OpenStack ID")}
        ),
    )
    name = django_filters.CharFilter(
        method=name_starts,
        label=gettext_lazy("Name"),
        widget=forms.TextInput(
            attrs={
                "placeholder": gettext_lazy("Start of the name; *text (3+ characters): anywhere")
            }
        ),
    )
    project_name = django_filters.CharFilter(
        method="filter_project_name", label=gettext_lazy("Project name")
    )
    openstack_id = django_filters.CharFilter(
        method="filter_openstack_id", label=gettext_lazy("OpenStack ID")
    )
    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, empty_label=gettext_lazy("Any status")
    )
    site = django_filters.ModelChoiceFilter(
        queryset=Site.objects.all(), empty_label=gettext_lazy("All sites")
    )
    boot = django_filters.ChoiceFilter(
        choices=BOOT_CHOICES,
        method="filter_boot",
        empty_label=gettext_lazy("Boot test: any"),
        label=gettext_lazy("Boots"),
    )

    class Meta:
        model = Snapshot
        fields = ("q", "name", "project_name", "openstack_id", "status", "site", "boot")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        style_form(self.form)

    def filter_boot(self, queryset, name, value):
        # The outcome is on the row (Image.boot_outcome): a verdict is walked from
        # its image_boot_* index in the table's order and stopped after a page; "not
        # verified" (most snapshots) is a test on the rows the sort index walks.
        if value == "untested":
            return queryset.exclude(boot_verdict_q())
        return queryset.filter(boot_verdict_q(), boot_outcome=value)

    def filter_openstack_id(self, queryset, name, value):
        # People paste whole ids or the first characters of one.
        return few_matches_first(queryset, id_prefix_q(value))

    def filter_project_name(self, queryset, name, value):
        # Projects are few: find them first, in their own query, then their snapshots
        # by the project index. As a subquery, SQLite could not tell it was small and
        # sorted every snapshot (see quick_search).
        projects = Project.objects.filter(name__icontains=value.strip()).order_by()
        return queryset.filter(project__in=list(projects.values_list("pk", flat=True)))

    def filter_quick(self, queryset, name, value):
        return quick_search(queryset, value, contains=("project__name",))
