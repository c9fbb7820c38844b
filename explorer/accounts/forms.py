"""The sign-up form (Django's user creation form: password validators, and an optional email)
and the sign-in forms (Django's, throttled: explorer/accounts/throttle.py)."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from explorer.accounts import throttle


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional: a way for the administrator to reach you."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # One short line each: the validators still say exactly what is wrong on submit.
        self.fields["username"].help_text = "Letters, digits and @ . + - _ only."
        self.fields[
            "password1"
        ].help_text = "At least 8 characters, not only digits, not a common password."
        self.fields["password2"].help_text = ""


class ThrottledSignIn:
    """For a sign-in form (an AuthenticationForm): refuses a sign-in while its account or
    address is over the failure limit, naming when to retry (`wait` is then set), and counts
    each failed one."""

    wait: throttle.Wait | None = None

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request)
        self.wait = throttle.login_wait(username=username, address=address)
        if self.wait is not None:
            raise ValidationError(self.wait.message, code="throttled")
        try:
            return super().clean()
        except ValidationError as exc:
            # Not "inactive": that password was right.
            if getattr(exc, "code", None) == "invalid_login":
                throttle.login_failed(username=username, address=address)
            raise


class SignInForm(ThrottledSignIn, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    pass
