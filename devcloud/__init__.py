"""devcloud: a small OpenStack-compatible cloud (Keystone v3, Nova, Glance v2 subsets).

Standard library only; see README.md in this directory.
"""
