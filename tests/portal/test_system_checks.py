"""Every manage.py command that touches the database (migrate, runserver, the demo)
runs Django's system checks with it; a warning there is printed to every operator."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_system_checks_with_the_database_warn_of_nothing():
    # fail_level WARNING: a warning raises SystemCheckError, naming it.
    call_command("check", databases=["default"], fail_level="WARNING")
