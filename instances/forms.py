from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms

from instances.participants import MAX_COUNT

if TYPE_CHECKING:
    from images.models import Image
    from instances.models import Flavor, Network
    from portal.models import Project, SshKey


class LaunchForm(forms.Form):
    """The new-instance form. Choices are filled by the view from the mirror."""

    project: forms.ModelChoiceField[Project] = forms.ModelChoiceField(
        queryset=None, empty_label=None
    )
    name = forms.CharField(
        required=False, max_length=63, label="Name",
        help_text="Letters, digits and dashes; with several instances, the prefix of each name.",
    )  # fmt: skip
    flavor: forms.ModelChoiceField[Flavor] = forms.ModelChoiceField(queryset=None, empty_label=None)
    # Asked only when the project may use several networks and none is configured.
    network: forms.ModelChoiceField[Network] = forms.ModelChoiceField(
        queryset=None, required=False, label="Network"
    )
    image: forms.ModelChoiceField[Image] = forms.ModelChoiceField(queryset=None, empty_label=None)
    count = forms.IntegerField(
        min_value=1, max_value=MAX_COUNT, initial=1, label="Number of instances"
    )
    # The launching user's own keys; empty: no key.
    ssh_key: forms.ModelChoiceField[SshKey] = forms.ModelChoiceField(
        queryset=None, required=False, label="SSH key"
    )
    participants = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5}), label="Participants (one per line)",
        help_text="Workshop mode: one instance per participant, named after them.",
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
        self.fields["ssh_key"].error_messages["invalid_choice"] = (
            "That SSH key is not in your profile (any more): choose another one, or none."
        )
        self.fields["network"].required = networks.exists()
        self.fields["network"].error_messages["required"] = (
            "Choose the network the new machines join."
        )
        self.fields["network"].error_messages["invalid_choice"] = (
            "Choose one of the listed networks."
        )
        self.fields["flavor"].error_messages["invalid_choice"] = "Choose one of the listed flavors."
        self.fields["image"].error_messages["invalid_choice"] = (
            "Choose one of the listed images or snapshots."
        )
