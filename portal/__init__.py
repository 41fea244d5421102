"""The core: the OpenStack gateway, models, access rules, the mirror and the job engine.

It imports no app and no wiring; the Celery app lives in config/ (see config/__init__.py).
"""
