"""What every page needs to link to the account pages: whether anyone may sign up, and the
`next` that brings the reader back here (none from the account pages themselves)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

# A longer `next` (a page whose URL carries a long text) is cut to the page's path: every page
# links to sign-in twice, and the text is not worth megabytes of links.
MAX_NEXT_CHARS = 2000


def accounts(request: HttpRequest) -> dict[str, object]:
    here = request.get_full_path()
    if len(here) > MAX_NEXT_CHARS:
        here = request.path
    return {
        "signup_open": settings.EXPLORER_SIGNUP_OPEN,
        "account_next": "" if here.startswith("/accounts/") else here,
    }
