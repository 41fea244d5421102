from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy

from instances.models import PARKED_STATUSES, Flavor, Server
from portal.filters import BoundedFilterSet, quick_search, style_form
from portal.models import Site

STATUS_CHOICES = [
    ("ACTIVE", gettext_lazy("Active")),
    ("SHUTOFF", gettext_lazy("Shut off")),
    ("BUILD", gettext_lazy("Building")),
    ("ERROR", gettext_lazy("Error")),
    ("PAUSED", gettext_lazy("Paused")),
    ("SUSPENDED", gettext_lazy("Suspended")),
    ("REBOOT", gettext_lazy("Rebooting")),
    ("HARD_REBOOT", gettext_lazy("Hard rebooting")),
    ("RESIZE", gettext_lazy("Resizing")),
    ("VERIFY_RESIZE", gettext_lazy("Resize to confirm")),
    ("REBUILD", gettext_lazy("Rebuilding")),
    ("MIGRATING", gettext_lazy("Migrating")),
    ("RESCUE", gettext_lazy("Rescue")),
    # Nova's SHELVED and SHELVED_OFFLOADED: the portal parks machines with shelve.
    ("parked", gettext_lazy("Parked")),
    ("UNKNOWN", gettext_lazy("Unknown")),
    ("DELETED", gettext_lazy("Deleted")),
]
# What the overview shows before the user picks: every machine that exists,
# trouble included (a workshop VM that failed to build still uses quota).
DEFAULT_STATUSES = [value for value, _ in STATUS_CHOICES if value != "DELETED"]


class ServerFilterSet(BoundedFilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label=gettext_lazy("Search"),
        widget=forms.TextInput(
            attrs={"placeholder": gettext_lazy("Name, OpenStack ID, project or creator")}
        ),
    )
    status = django_filters.MultipleChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", widget=forms.CheckboxSelectMultiple
    )
    project = django_filters.ModelChoiceFilter(
        queryset=None, empty_label=gettext_lazy("All projects")
    )
    site = django_filters.ModelChoiceFilter(
        queryset=Site.objects.all(), empty_label=gettext_lazy("All sites")
    )
    flavor = django_filters.ChoiceFilter(
        field_name="flavor_name", choices=[], empty_label=gettext_lazy("All flavors")
    )

    class Meta:
        model = Server
        fields = ("q", "status", "project", "site", "flavor")

    def __init__(self, data=None, *args, projects=None, flavors=None, **kwargs):
        data = data.copy() if data is not None else None
        if data is not None and not data.getlist("status") and not data.get("filtered"):
            data.setlist("status", DEFAULT_STATUSES)
        super().__init__(data, *args, **kwargs)
        self.filters["project"].queryset = projects
        # The flavors the mirror knows (a few dozen per site), not a DISTINCT over
        # every server: that read all 10,000 of them on each view. `flavors`: the
        # names the user may see (a private flavor only where it is usable), else all.
        # A server may run a flavor deleted since (or private): the asked-for name
        # is a choice too, and simply matches what it matches.
        if flavors is None:
            flavors = Flavor.objects.filter(deleted_at__isnull=True).values_list("name", flat=True)
        flavors = set(flavors)
        if data is not None and data.get("flavor"):
            flavors.add(data["flavor"])
        flavors = sorted(flavors)
        self.filters["flavor"].extra["choices"] = [(f, f) for f in flavors]
        style_form(self.form)

    def filter_search(self, queryset, name, value):
        return quick_search(queryset, value, contains=("project__name", "created_by__username"))

    def filter_status(self, queryset, name, values):
        if not values or set(values) == set(DEFAULT_STATUSES):
            # Everything that exists, also in a status Nova added after this list.
            return queryset.filter(deleted_at__isnull=True).exclude(status="DELETED")
        statuses = [v for v in values if v not in ("DELETED", "parked")]
        if "parked" in values:
            statuses += PARKED_STATUSES
        wanted = Q(status__in=statuses, deleted_at__isnull=True)
        if "DELETED" in values:
            wanted |= Q(deleted_at__isnull=False) | Q(status="DELETED")
        return queryset.filter(wanted)
