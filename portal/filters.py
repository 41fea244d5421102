from django import forms
from django.db.models import Q, QuerySet


def style_form(form: forms.Form) -> forms.Form:
    """Give a filter form's widgets Bootstrap's classes."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxSelectMultiple):
            widget.attrs.setdefault("class", "form-check-input")
        elif isinstance(widget, forms.Select):
            widget.attrs.setdefault("class", "form-select form-select-sm")
        else:
            widget.attrs.setdefault("class", "form-control form-control-sm")
    return form


def quick_search(queryset: QuerySet, value: str, *, contains: tuple[str, ...]) -> QuerySet:
    """Rows whose OpenStack id starts with `value` (people paste whole ids or the
    first characters of one), whose case-folded name contains it, or whose
    `contains` fields contain it."""
    value = value.strip()
    if not value:
        return queryset
    wanted = Q(openstack_id__istartswith=value) | Q(name_key__contains=value.casefold())
    for field_name in contains:
        wanted |= Q(**{f"{field_name}__icontains": value})
    return queryset.filter(wanted)


def name_contains(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """A django-filter method: the case-folded name contains `value`, the same on
    SQLite and PostgreSQL (also for "Ü" and "ß")."""
    value = value.strip()
    return queryset.filter(name_key__contains=value.casefold()) if value else queryset
