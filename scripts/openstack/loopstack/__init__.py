"""Plug-ins of the loopback OpenStack cloud (scripts/openstack/up.py).

virt.LoopbackDriver is Nova's compute driver (loaded through the shim
nova/virt/loopback.py that up.py writes into the venv); ml2 holds Neutron's
agentless mechanism driver (entry point "loopback"); seed.py creates the
accounts, flavors, images and network.
"""
