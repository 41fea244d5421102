"""An ML2 mechanism driver that binds every port at once, without agents.

The loopback cloud runs no L2 agent, so the stock drivers (openvswitch,
linuxbridge, ...) would leave ports in binding_failed and Nova would refuse to
boot. This driver binds flat, local and vlan segments on any host with
vif_type "ovs" and marks the port ACTIVE, which is all Nova's port binding
needs. Registered as "loopback" in neutron.ml2.mechanism_drivers.
"""

from __future__ import annotations

from typing import ClassVar

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

BINDABLE = {
    constants.TYPE_FLAT,
    constants.TYPE_LOCAL,
    constants.TYPE_VLAN,
    constants.TYPE_VXLAN,
    constants.TYPE_GENEVE,
}


class LoopbackMechanismDriver(api.MechanismDriver):
    vif_type = portbindings.VIF_TYPE_OVS
    vif_details: ClassVar[dict[str, bool]] = {
        portbindings.CAP_PORT_FILTER: True,
        portbindings.OVS_HYBRID_PLUG: False,
    }

    def initialize(self):
        LOG.info("loopback mechanism driver: binding ports without agents")

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        vnic = context.current.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        if vnic != portbindings.VNIC_NORMAL:
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in BINDABLE:
                context.set_binding(
                    segment[api.ID],
                    self.vif_type,
                    dict(self.vif_details),
                    status=constants.PORT_STATUS_ACTIVE,
                )
                LOG.debug("bound port %s on %s", context.current["id"], context.host)
                return
