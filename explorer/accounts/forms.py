"""The sign-up form: Django's user creation form (password validators) and an optional email."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional: a way for the administrator to reach you."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
