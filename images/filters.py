from __future__ import annotations

import django_filters
from django import forms
from django.utils.translation import gettext_lazy

from images.models import Image
from portal.filters import BoundedFilterSet, name_contains, style_form
from portal.models import Site


class ImageFilterSet(BoundedFilterSet):
    name = django_filters.CharFilter(
        method=name_contains,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("e.g. Ubuntu")}),
    )
    tag = django_filters.ChoiceFilter(
        method="filter_tag", choices=[], empty_label=gettext_lazy("Any tag")
    )
    site = django_filters.ModelChoiceFilter(
        queryset=Site.objects.all(), method="filter_site", empty_label=gettext_lazy("All sites")
    )

    class Meta:
        model = Image
        fields = ("name", "tag", "site")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The distinct lists only: a site's thousand public images share a few dozen,
        # and decoding each image's JSON was a third of the (shared) catalog's view.
        lists = self.queryset.order_by().values_list("tags", flat=True).distinct()
        tags = sorted({tag for tags in lists for tag in tags})
        self.filters["tag"].extra["choices"] = [(t, t) for t in tags]
        style_form(self.form)

    def filter_tag(self, queryset, name, value):
        # JSON containment is not portable to SQLite; a quoted match on the
        # JSON text is exact for a list of plain strings.
        return queryset.filter(tags__icontains=f'"{value}"')

    def filter_site(self, queryset, name, value):
        # Keep every site's copy of an image that exists on the chosen site,
        # so the matrix still shows where else it is (or is not).
        names = queryset.filter(site=value).values("name")
        return queryset.filter(name__in=names)
