"""The users file: one `name:hash` line per dashboard user, the hash from argon2id (`ghingest users hash`).

Lines starting with `#` and blank lines are ignored. The file is re-read when it changes, so adding or removing a
user needs no restart; a user removed (or whose password changed) loses their sessions at their next request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ghingest.app.settings import ConfigError

_hasher = PasswordHasher()
# Verified when the name is unknown, so that a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("ghingest: no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def parse_users(text: str, *, source: str = "users file") -> dict[str, str]:
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        name, hashed = name.strip(), hashed.strip()
        if not sep or not name or not hashed.startswith("$argon2"):
            raise ConfigError(f"GHINGEST_USERS_FILE: {source} line {number} is not 'name:<argon2 hash>'")
        users[name] = hashed
    return users


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    name: str
    fingerprint: str  # changes when the password does: a session carries it and ends with it


def fingerprint(hashed: str) -> str:
    return hashlib.sha256(hashed.encode("utf-8")).hexdigest()[:24]


class UsersFile:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        if path is not None:
            self._reload()

    @property
    def configured(self) -> bool:
        return self._path is not None

    def _reload(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError as exc:
            raise ConfigError(f"GHINGEST_USERS_FILE: cannot read {self._path}: {exc.strerror}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._users = parse_users(self._path.read_text(encoding="utf-8"), source=str(self._path))
            self._stamp = stamp

    def _current(self) -> dict[str, str]:
        if self._path is None:
            return {}
        try:
            self._reload()
        except ConfigError:
            return {}  # the file vanished or broke: nobody signs in with a password until it is fixed
        return self._users

    def verify(self, name: str, password: str) -> VerifiedUser | None:
        hashed = self._current().get(name)
        try:
            _hasher.verify(hashed or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return VerifiedUser(name, fingerprint(hashed)) if hashed else None

    def fingerprint_of(self, name: str) -> str | None:
        hashed = self._current().get(name)
        return fingerprint(hashed) if hashed else None
