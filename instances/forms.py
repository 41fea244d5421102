from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.utils.translation import gettext_lazy

from instances.participants import MAX_COUNT

if TYPE_CHECKING:
    from images.models import Image
    from instances.models import Flavor, Network
    from portal.models import Project, SshKey


class LaunchForm(forms.Form):
    """The new-instance form. Choices are filled by the view from the mirror."""

    project: forms.ModelChoiceField[Project] = forms.ModelChoiceField(
        queryset=None, empty_label=None, label=gettext_lazy("Project")
    )
    name = forms.CharField(
        required=False, max_length=63, label=gettext_lazy("Name"),
        help_text=gettext_lazy("Letters, digits and dashes; with several instances, the prefix of each name."),
    )  # fmt: skip
    flavor: forms.ModelChoiceField[Flavor] = forms.ModelChoiceField(
        queryset=None, empty_label=None, label=gettext_lazy("Flavor")
    )
    # Asked only when the project may use several networks and none is configured.
    network: forms.ModelChoiceField[Network] = forms.ModelChoiceField(
        queryset=None, required=False, label=gettext_lazy("Network")
    )
    image: forms.ModelChoiceField[Image] = forms.ModelChoiceField(
        queryset=None, empty_label=None, label=gettext_lazy("Image")
    )
    count = forms.IntegerField(
        min_value=1, max_value=MAX_COUNT, initial=1, label=gettext_lazy("Number of instances")
    )
    # The launching user's own keys; empty: no key.
    ssh_key: forms.ModelChoiceField[SshKey] = forms.ModelChoiceField(
        queryset=None, required=False, label=gettext_lazy("SSH key")
    )
    participants = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5}), label=gettext_lazy("Participants (one per line)"),
        help_text=gettext_lazy("Workshop mode: one instance per participant, named after them."),
    )  # fmt: skip

    def __init__(self, *args, projects, flavors, images, networks, ssh_keys, **kwargs):
        """`networks`: the networks to choose from, or an empty queryset when the
        page need not ask (then the field is ignored)."""
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects
        self.fields["flavor"].queryset = flavors
        self.fields["image"].queryset = images
        self.fields["network"].queryset = networks
        self.fields["ssh_key"].queryset = ssh_keys
        self.fields["ssh_key"].error_messages["invalid_choice"] = gettext_lazy(
            "That SSH key is not in your profile (any more): choose another one, or none."
        )
        self.fields["network"].required = networks.exists()
        self.fields["network"].error_messages["required"] = gettext_lazy(
            "Choose the network the new machines join."
        )
        self.fields["network"].error_messages["invalid_choice"] = gettext_lazy(
            "Choose one of the listed networks."
        )
        self.fields["flavor"].error_messages["invalid_choice"] = gettext_lazy(
            "Choose one of the listed flavors."
        )
        self.fields["image"].error_messages["invalid_choice"] = gettext_lazy(
            "Choose one of the listed images or snapshots."
        )
