"""The users file: one `name:hash[:role]` line per dashboard user, the hash from argon2id (`ghingest users hash`).

The role is `viewer` (reads) or `operator` (may also reprocess, replay, retry and forward again). A line without
one is an `operator`: that is what every user of a file written before roles could do, so an upgrade takes nobody's
buttons away; `ghingest users hash` always writes the role, `viewer` unless told otherwise.

Lines starting with `#` and blank lines are ignored. The file is re-read when it changes, so adding or removing a
user needs no restart; a user removed (or whose password changed) loses their sessions at their next request, and
a changed role applies from the next request on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ghingest.app.settings import ConfigError

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
ROLE_OF_A_LINE_WITHOUT_ONE: Role = "operator"

_hasher = PasswordHasher()
# Verified when the name is unknown, so that a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("ghingest: no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class UserEntry:
    hashed: str
    role: Role


def parse_users(text: str, *, source: str = "users file") -> dict[str, UserEntry]:
    users: dict[str, UserEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # An argon2 hash has no ':' ($argon2id$v=19$m=…,t=…,p=…$salt$hash): the fields split cleanly.
        name, _, rest = line.partition(":")
        hashed, sep, role = rest.partition(":")
        name, hashed, role = name.strip(), hashed.strip(), role.strip()
        if not name or not hashed.startswith("$argon2") or (sep and role not in ROLES):
            raise ConfigError(
                f"GHINGEST_USERS_FILE: {source} line {number} is not 'name:<argon2 hash>[:viewer|operator]'"
            )
        users[name] = UserEntry(hashed, cast(Role, role) if sep else ROLE_OF_A_LINE_WITHOUT_ONE)
    return users


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    name: str
    fingerprint: str  # changes when the password does: a session carries it and ends with it
    role: Role


def fingerprint(hashed: str) -> str:
    return hashlib.sha256(hashed.encode("utf-8")).hexdigest()[:24]


class UsersFile:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, UserEntry] = {}
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

    def _current(self) -> dict[str, UserEntry]:
        if self._path is None:
            return {}
        try:
            self._reload()
        except ConfigError:
            return {}  # the file vanished or broke: nobody signs in with a password until it is fixed
        return self._users

    def verify(self, name: str, password: str) -> VerifiedUser | None:
        entry = self._current().get(name)
        try:
            _hasher.verify(entry.hashed if entry else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return VerifiedUser(name, fingerprint(entry.hashed), entry.role) if entry else None

    def lookup(self, name: str) -> VerifiedUser | None:
        """The user as the file says now (not verified: for a session made with a verified password)."""
        entry = self._current().get(name)
        return VerifiedUser(name, fingerprint(entry.hashed), entry.role) if entry else None
