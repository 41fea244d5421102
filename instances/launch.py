"""Launching instances from an image or a snapshot, one or a workshop's worth:
the request that records the launch job, and the hook the workshops app listens on.

The rules live in instances.launch_rules, names in instances.naming, participants
in instances.participants, retrying failed seats in instances.launch_retry.
"""

from __future__ import annotations

from instances.jobs import InstancesLaunch
from instances.launch_rules import LaunchPlan
from portal.models import Job

# Called with (job, plan) after a launch with participants was recorded; the
# workshops app registers here (instances cannot import it: it sits above).
launch_listeners: list = []


def instance_launch_request(
    *, actor, plan: LaunchPlan, idempotency_key: str = "", notify: bool = True
) -> Job:
    """Record the launch job; with participants, tell the listeners (unless the
    caller is the workshop itself, adding seats)."""
    job = _launch_job(actor=actor, plan=plan, idempotency_key=idempotency_key)
    if plan.participants and notify:
        for listener in launch_listeners:
            listener(job, plan)
    return job


def _launch_job(*, actor, plan: LaunchPlan, idempotency_key: str) -> Job:
    return InstancesLaunch.create(
        actor=actor,
        idempotency_key=idempotency_key,
        project=plan.project,
        site=plan.project.site,
        target_image_id=plan.image.openstack_id,
        params=InstancesLaunch.Params(
            prefix=plan.prefix,
            names=plan.names,
            participants=plan.participants,
            flavor_id=plan.flavor.openstack_id,
            flavor_pk=plan.flavor.pk,
            image_pk=plan.image.pk,
            image_id=plan.image.openstack_id,
            network_ids=plan.network_ids,
            ssh_key_pk=plan.ssh_key.pk if plan.ssh_key else None,
            ssh_key_name=plan.ssh_key.name if plan.ssh_key else "",
        ),
    )
