"""Limits of live steering, read once from the environment with the strict readers of
explorer/env.py (documented in docs/configuration.md, "Live steering").

A Django setting of the same name wins over the environment (tests override them with the
`settings` fixture); `limits()` reads them at call time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings

from explorer.env import env_float, env_int

# Largest |strength| in raw activation units (demo features peak around 1-30; real SAEs
# reach a few hundred). The range is symmetric: negative strengths steer away.
_ENV = {
    "STEER_STRENGTH_MAX": env_float("STEER_STRENGTH_MAX", 1000.0, minimum=0.0),
    # Features (and steering vectors) in one request.
    "STEER_MAX_FEATURES": env_int("STEER_MAX_FEATURES", 8, minimum=1),
    # New tokens per row of one generation.
    "STEER_MAX_NEW_TOKENS": env_int("STEER_MAX_NEW_TOKENS", 128, minimum=1),
    # Characters of prompt (the model's context is checked by the worker as well).
    "STEER_MAX_PROMPT_CHARS": env_int("STEER_MAX_PROMPT_CHARS", 2000, minimum=1),
    # Characters of a chat's messages together (each row's history counted once).
    "STEER_MAX_CHAT_CHARS": env_int("STEER_MAX_CHAT_CHARS", 8000, minimum=1),
    # Generations (cache misses) one client may start per window; a slider drag sends a few
    # per second, so the default leaves room for continuous dragging but stops floods.
    "STEER_RATE_LIMIT": env_int("STEER_RATE_LIMIT", 240, minimum=1),
    "STEER_RATE_WINDOW_S": env_int("STEER_RATE_WINDOW_S", 60, minimum=1),
    # Generations one client may have in flight at once, across every socket, HTTP stream
    # and web replica (counted in Redis); one past it is refused with `rate_limited`. A page
    # has one in flight (a new steer supersedes its own), so a few tabs or a notebook fit
    # under the default, while one client cannot fill the live workers' batches.
    "STEER_MAX_IN_FLIGHT": env_int("STEER_MAX_IN_FLIGHT", 4, minimum=1),
    # Seconds after which a generation still counted in flight is assumed lost (a web process
    # that died without releasing it) and no longer counts: the safety net, not the release.
    "STEER_IN_FLIGHT_TTL_S": env_int("STEER_IN_FLIGHT_TTL_S", 300, minimum=10),
    # Seconds a request may wait for a worker to take it before the client gets an error.
    "STEER_START_TIMEOUT_S": env_float("STEER_START_TIMEOUT_S", 15.0, minimum=0.5),
    # Contrast pairs for one CAA steering vector.
    "STEER_MAX_VECTOR_PAIRS": env_int("STEER_MAX_VECTOR_PAIRS", 256, minimum=1),
}


def setting(name: str):
    return getattr(settings, name, _ENV[name])


@dataclass(frozen=True)
class Limits:
    strength_max: float
    max_features: int
    max_new_tokens: int
    max_prompt_chars: int
    rate_limit: int
    rate_window_s: int
    start_timeout_s: float
    max_vector_pairs: int
    max_chat_chars: int = 8000
    max_in_flight: int = 4
    in_flight_ttl_s: int = 300

    def to_page(self) -> dict:
        """The `limits` object of the steering page's config."""
        return {
            "strength_min": -self.strength_max,
            "strength_max": self.strength_max,
            "max_features": self.max_features,
            "max_new_tokens": self.max_new_tokens,
            "max_prompt_chars": self.max_prompt_chars,
            "max_chat_chars": self.max_chat_chars,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def limits() -> Limits:
    return Limits(
        strength_max=float(setting("STEER_STRENGTH_MAX")),
        max_features=int(setting("STEER_MAX_FEATURES")),
        max_new_tokens=int(setting("STEER_MAX_NEW_TOKENS")),
        max_prompt_chars=int(setting("STEER_MAX_PROMPT_CHARS")),
        rate_limit=int(setting("STEER_RATE_LIMIT")),
        rate_window_s=int(setting("STEER_RATE_WINDOW_S")),
        start_timeout_s=float(setting("STEER_START_TIMEOUT_S")),
        max_vector_pairs=int(setting("STEER_MAX_VECTOR_PAIRS")),
        max_chat_chars=int(setting("STEER_MAX_CHAT_CHARS")),
        max_in_flight=int(setting("STEER_MAX_IN_FLIGHT")),
        in_flight_ttl_s=int(setting("STEER_IN_FLIGHT_TTL_S")),
    )
