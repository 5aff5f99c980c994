"""Auth tokens, as ``--auth-token`` chooses: ``simple`` (the default) or ``jwt,...``.

Both providers offer the same: ``prefix()`` (what the member that checked a login's password
proposes), ``assign(prefix, user, index, revision)`` (applying the login: the token),
``info(token)`` (the user and, for a JWT, the auth revision it was made at; None: not valid),
``invalidate_user`` and ``clear``.

Simple tokens: ``<16 random letters>.<raft index>``.

The member that checked the password draws the letters; applying the login assigns the token,
so every member knows it. Each member forgets a token unused for ``--auth-token-ttl`` seconds
(a use renews it), every token of a user whose password changes or who is deleted, and all of
them when auth is disabled. Tokens live in memory only: after a restart clients log in again
(they get ``etcdserver: invalid auth token`` and do so by themselves).
"""
from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization

from pyetcd import errors
from pyetcd.server.config import ConfigError, parse_duration

_LETTERS = string.ascii_letters
PREFIX_LENGTH = 16


def random_letters() -> str:
    return "".join(secrets.choice(_LETTERS) for _ in range(PREFIX_LENGTH))


class SimpleTokens:
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[str, list] = {}  # token -> [user name, expiry]
        self._sweep_above = 1024

    def prefix(self) -> str:
        return random_letters()

    def assign(self, prefix: str, user: str, index: int, revision: int) -> str:
        token = f"{prefix}.{index}"
        self._tokens[token] = [user, self._clock() + self.ttl]
        if len(self._tokens) > self._sweep_above:
            now = self._clock()
            for stale in [t for t, (_, expiry) in self._tokens.items() if expiry <= now]:
                del self._tokens[stale]
            self._sweep_above = max(1024, 2 * len(self._tokens))
        return token

    def info(self, token: str) -> tuple[str, int | None] | None:
        """The user a live token stands for (its TTL starts again), else None."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        now = self._clock()
        if entry[1] <= now:
            del self._tokens[token]
            return None
        entry[1] = now + self.ttl
        return entry[0], None

    def invalidate_user(self, user: str) -> None:
        for token in [t for t, (name, _) in self._tokens.items() if name == user]:
            del self._tokens[token]

    def clear(self) -> None:
        self._tokens.clear()


INVALID_OPTIONS = "auth: invalid auth options"
_JWT_METHODS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
DEFAULT_JWT_TTL = 300.0


class JWTTokens:
    """``--auth-token jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256|PS256|ES256|...,ttl=5m``:
    signed ``{"exp", "revision", "username"}`` claims, as etcd 3.5.1 makes them. Nothing is kept:
    a token is valid on any member with the public key until it expires (a use does not extend
    it), and one made before an auth change is refused with ``auth: revision in header is old``
    (the client logs in again). With only ``pub-key`` the member verifies but cannot log anyone in."""

    def __init__(self, method: str, private_key, public_key, ttl: float) -> None:
        self.method, self._private, self._public, self.ttl = method, private_key, public_key, ttl

    @classmethod
    def from_options(cls, options: str) -> "JWTTokens":
        opts: dict[str, str] = {}
        for item in filter(None, options.split(",")):
            name, eq, value = item.partition("=")
            if not eq or name not in ("pub-key", "priv-key", "sign-method", "ttl"):
                raise ConfigError(INVALID_OPTIONS)
            opts[name] = value
        method = opts.get("sign-method", "")
        if method not in _JWT_METHODS:
            raise ConfigError(INVALID_OPTIONS)
        if not (opts.get("pub-key") or opts.get("priv-key")):
            raise ConfigError("auth: missing key data")
        try:
            ttl = parse_duration(opts["ttl"]) if "ttl" in opts else DEFAULT_JWT_TTL
            private = public = None
            if opts.get("priv-key"):
                with open(opts["priv-key"], "rb") as f:
                    private = serialization.load_pem_private_key(f.read(), password=None)
                public = private.public_key()
            if opts.get("pub-key"):
                with open(opts["pub-key"], "rb") as f:
                    public = serialization.load_pem_public_key(f.read())
        except (OSError, ValueError, TypeError):
            raise ConfigError(INVALID_OPTIONS) from None
        return cls(method, private, public, ttl)

    def prefix(self) -> str:
        return ""

    def assign(self, prefix: str, user: str, index: int, revision: int) -> str:
        if self._private is None:
            raise errors.ErrVerifyOnly
        claims = {"exp": int(time.time() + self.ttl), "revision": revision, "username": user}
        return jwt.encode(claims, self._private, algorithm=self.method)

    def info(self, token: str) -> tuple[str, int | None] | None:
        try:
            claims = jwt.decode(token, self._public, algorithms=[self.method])
        except jwt.PyJWTError:
            return None
        user, revision = claims.get("username"), claims.get("revision")
        if not isinstance(user, str) or not isinstance(revision, int):
            return None
        return user, revision

    def invalidate_user(self, user: str) -> None:
        """(a JWT stays valid until it expires, as in etcd)"""

    def clear(self) -> None:
        """(as invalidate_user)"""


def token_provider(spec: str, ttl: float, clock: Callable[[], float]) -> SimpleTokens | JWTTokens:
    kind, _, options = spec.partition(",")
    if kind == "simple":
        return SimpleTokens(ttl, clock)
    if kind == "jwt":
        return JWTTokens.from_options(options)
    raise ConfigError(INVALID_OPTIONS)

