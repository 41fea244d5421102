"""The snapshot rules for templates of the apps below snapshots, which may not
import it: `{% load snapshot_rules %}`, then `server|snapshot_refusal`. (Templates
are not import-checked; the arrow in Python still points up only.)"""

from django import template

from snapshots.rules import snapshot_refusal

register = template.Library()
register.filter("snapshot_refusal", snapshot_refusal)
