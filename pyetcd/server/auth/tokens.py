"""etcd's simple tokens (``--auth-token simple``): ``<16 random letters>.<raft index>``.

The member that checked the password draws the letters; applying the login assigns the token,
so every member knows it. Each member forgets a token unused for ``--auth-token-ttl`` seconds
(a use renews it), every token of a user whose password changes or who is deleted, and all of
them when auth is disabled. Tokens live in memory only: after a restart clients log in again
(they get ``etcdserver: invalid auth token`` and do so by themselves).
"""
from __future__ import annotations

import secrets
import string
from collections.abc import Callable

_LETTERS = string.ascii_letters
PREFIX_LENGTH = 16


def new_prefix() -> str:
    return "".join(secrets.choice(_LETTERS) for _ in range(PREFIX_LENGTH))


class SimpleTokens:
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[str, list] = {}  # token -> [user name, expiry]
        self._sweep_above = 1024

    def assign(self, token: str, user: str) -> None:
        self._tokens[token] = [user, self._clock() + self.ttl]
        if len(self._tokens) > self._sweep_above:
            now = self._clock()
            for stale in [t for t, (_, expiry) in self._tokens.items() if expiry <= now]:
                del self._tokens[stale]
            self._sweep_above = max(1024, 2 * len(self._tokens))

    def user(self, token: str) -> str | None:
        """The user a live token stands for (its TTL starts again), else None."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        now = self._clock()
        if entry[1] <= now:
            del self._tokens[token]
            return None
        entry[1] = now + self.ttl
        return entry[0]

    def invalidate_user(self, user: str) -> None:
        for token in [t for t, (name, _) in self._tokens.items() if name == user]:
            del self._tokens[token]

    def clear(self) -> None:
        self._tokens.clear()
