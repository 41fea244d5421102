from __future__ import annotations

import unicodedata

from django import forms
from django.utils.translation import gettext, gettext_lazy

NAME_MAX = 255


def clean_snapshot_name(value: str) -> str:
    """Trimmed, 1–255 characters, no control characters. Returns the clean name."""
    name = (value or "").strip()
    if not name:
        raise forms.ValidationError(gettext("Enter a name for the snapshot."))
    if len(name) > NAME_MAX:
        raise forms.ValidationError(
            gettext("The name is %(length)s characters long; at most %(max)s are allowed.")
            % {"length": len(name), "max": NAME_MAX}
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise forms.ValidationError(
            gettext("The name must not contain control characters (tabs, newlines…).")
        )
    return name


class SnapshotCreateForm(forms.Form):
    name = forms.CharField(max_length=1000, strip=False, label=gettext_lazy("Snapshot name"))
    description = forms.CharField(
        required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
        label=gettext_lazy("Description (optional)"),
    )  # fmt: skip
    restart = forms.BooleanField(
        required=False, label=gettext_lazy("Start the instance again when the snapshot is done")
    )
    verify = forms.BooleanField(
        required=False, initial=True,
        label=gettext_lazy(
            "Test that it boots (a small test instance starts from it, then is deleted)"
        ),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs.update({"class": "form-control", "autocomplete": "off"})
        self.fields["description"].widget.attrs.update({"class": "form-control"})
        self.fields["restart"].widget.attrs.update({"class": "form-check-input"})
        self.fields["verify"].widget.attrs.update({"class": "form-check-input"})

    def clean_name(self) -> str:
        return clean_snapshot_name(self.cleaned_data.get("name", ""))

    def clean_description(self) -> str:
        return self.cleaned_data.get("description", "").strip()
