"""Runs OpenStack's own test suite (tempest) against a fresh devcloud.

`make conformance` runs `python3 -m devcloud.conformance`; see run.py and the
conformance section of devcloud/README.md.
"""
