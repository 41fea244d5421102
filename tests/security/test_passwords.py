"""Passwords an admin sets are checked by Django's full set of validators."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse


@pytest.mark.parametrize("password", ["password123", "12345678901"])
def test_a_common_or_all_digit_password_is_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_the_admin_cannot_create_a_user_with_a_common_password(admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {"username": "dave", "password1": "password123", "password2": "password123",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the reason
    assert "This password is too common." in response.content.decode()
    assert not get_user_model().objects.filter(username="dave").exists()
