"""devidp: a small OpenID Connect provider on loopback, for the tests and the demo.

A Django project of its own (its own settings, sqlite database and templates) built
on django-oidc-provider: discovery, authorize (a real login page and a consent page),
token, userinfo, JWKS (an RS256 key made at first start) and end_session. Users,
their entitlements and the registered clients come from a JSON file (see config.py)
that is read again whenever it changes, so a test can change a user's claims
between two sign-ins. Like devcloud it never imports portal code.
"""
