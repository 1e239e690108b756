"""Signing keys: a file-based keyring whose states follow from the clock.

Each key is two files in one directory: `<kid>.pem` (the PKCS#8 private key,
mode 0600) and `<kid>.json` (`kid`, `alg`, `created_at`, `activates_at`, in
ISO 8601 UTC). The kid is the alg and the key's RFC 7638 thumbprint
(`rs256-<thumbprint>`), so a `.json` that does not belong to its `.pem` is
caught on load, and no file name starts with "-". There is no database table and no
promotion job: every process and every instance that shares the directory
derives the same states from the same files and the time (DESIGN.md, "Tokens").

For each algorithm, at a moment `now`:

- the key that *signs* is the newest key (by `activates_at`) whose
  `activates_at <= now`: it is "active";
- a key whose `activates_at` is still ahead is "next": published, not signing,
  so relying parties can fetch it before they meet a token it signed;
- a key superseded by a newer active key is "retired": still published, until
  every token it signed has expired (`superseded_at + max_token_lifetime`);
- after that it is "expired": no longer published. Its files stay for the
  operator to delete.

Nothing here imports Flask; `KeyStore` is the object the app keeps.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from joserfc.jwk import ECKey, RSAKey

log = logging.getLogger(__name__)

# alg -> (joserfc key class, how to make a new private key, a check on a loaded one).
# RSA 2048 and P-256 are what RS256 and ES256 call for (RFC 7518 §3.3, §3.4).
_ALGORITHMS: dict[str, tuple[type[RSAKey] | type[ECKey], Any, Any]] = {
    "RS256": (RSAKey, lambda: RSAKey.generate_key(2048),
              lambda key: key.private_key.key_size >= 2048),
    "ES256": (ECKey, lambda: ECKey.generate_key("P-256"),
              lambda key: key.curve_name == "P-256"),
}
SUPPORTED_ALGS: tuple[str, ...] = tuple(_ALGORITHMS)

# Mode of the files we write. Metadata is not secret, but nobody else needs it.
_PEM_MODE = 0o600
_JSON_MODE = 0o600
_DIR_MODE = 0o700


class KeyringError(RuntimeError):
    """The key directory is inconsistent, or a request cannot be met from it."""


class NoSigningKey(KeyringError):
    """No key of the requested algorithm is active."""


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"
    EXPIRED = "expired"


# The states that JWKS publishes.
PUBLISHED_STATES = frozenset({KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRED})


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created_at: datetime
    activates_at: datetime
    # The joserfc private key. Kept out of repr and comparisons.
    key: RSAKey | ECKey = field(repr=False, compare=False)

    @cached_property
    def _public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (kty, kid, alg, use="sig" and the public members only)."""
        return dict(self._public_jwk)

    def header(self, **extra: Any) -> dict[str, Any]:
        """A JWS protected header naming this key: every JWT we sign carries its kid."""
        return {"alg": self.alg, "kid": self.kid, **extra}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return _utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _format_time(value: datetime) -> str:
    # Microseconds, so that `rotate --now` right after `ensure` still sorts after it.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(value: Any, *, path: Path, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise KeyringError(f"{path}: {name} must be an ISO 8601 time, not {value!r}") from None
    if parsed.tzinfo is None:
        raise KeyringError(f"{path}: {name} must carry a UTC offset (e.g. 2025-01-01T00:00:00Z)")
    return parsed.astimezone(UTC)


def _check_alg(alg: str) -> None:
    if alg not in _ALGORITHMS:
        raise KeyringError(f"unsupported signing algorithm {alg!r}; use one of {', '.join(SUPPORTED_ALGS)}")


# --- Reading --------------------------------------------------------------

def _key_files(directory: Path) -> dict[str, dict[str, Path]]:
    """stem -> {".pem": path, ".json": path}; hidden files and other extensions are not ours."""
    found: dict[str, dict[str, Path]] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not entry.is_file():
            continue
        stem, ext = os.path.splitext(name)
        if ext in (".pem", ".json"):
            found.setdefault(stem, {})[ext] = Path(entry.path)
    return found


def _kid(alg: str, key: RSAKey | ECKey) -> str:
    # A thumbprint may start with "-" (base64url); a leading letter keeps `rm <kid>.pem` safe.
    return f"{alg.lower()}-{key.thumbprint()}"


@lru_cache(maxsize=64)
def _parse_private_pem(pem: bytes) -> Any:
    # Loading an RSA key checks it thoroughly (~60 ms). Cache by content so each
    # process pays that once per key, not once per reload, app or test.
    return load_pem_private_key(pem, password=None)


def _load_one(pem_path: Path, json_path: Path) -> SigningKey:
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as err:
        raise KeyringError(f"{json_path}: unreadable key metadata ({err})") from None
    if not isinstance(meta, dict):
        raise KeyringError(f"{json_path}: key metadata must be a JSON object")
    kid, alg = meta.get("kid"), meta.get("alg")
    if kid != json_path.stem:
        raise KeyringError(f"{json_path}: kid {kid!r} does not match the file name")
    if alg not in _ALGORITHMS:
        raise KeyringError(f"{json_path}: unsupported alg {alg!r}")
    created_at = _parse_time(meta.get("created_at"), path=json_path, name="created_at")
    activates_at = _parse_time(meta.get("activates_at"), path=json_path, name="activates_at")

    key_class, _, acceptable = _ALGORITHMS[alg]
    try:
        native = _parse_private_pem(pem_path.read_bytes())
        key = key_class.import_key(native, parameters={"kid": kid, "alg": alg, "use": "sig"})
    except Exception as err:  # joserfc/cryptography raise several types for a bad PEM
        raise KeyringError(f"{pem_path}: not a {key_class.key_type} private key for {alg} ({err})") from None
    if not key.is_private or not acceptable(key):
        raise KeyringError(f"{pem_path}: not a private key suitable for {alg}")
    # The kid holds the thumbprint: this proves the .json and the .pem belong together.
    if _kid(alg, key) != kid:
        raise KeyringError(f"{pem_path}: the key does not match its kid {kid!r} (expected {_kid(alg, key)!r})")
    if pem_path.stat().st_mode & 0o077:
        log.warning("signing key %s is readable by group or others; chmod 600 it", pem_path)
    return SigningKey(kid=kid, alg=alg, created_at=created_at, activates_at=activates_at, key=key)


def load_keys(directory: str | os.PathLike[str]) -> list[SigningKey]:
    """Every key in `directory`, oldest activation first; [] when the directory does not exist.

    Files other than `*.pem` and `*.json` (README.md, .gitkeep, temporary files) are ignored.

    Raises:
        KeyringError: a `.pem` without its `.json` or the reverse, or a pair that is
            unreadable, of an unsupported algorithm, or whose key does not match its kid.
    """
    directory = Path(directory)
    keys = []
    for stem, files in sorted(_key_files(directory).items()):
        if ".pem" not in files or ".json" not in files:
            present, missing = (".pem", ".json") if ".pem" in files else (".json", ".pem")
            raise KeyringError(
                f"{directory / (stem + present)} has no matching {stem}{missing}; "
                "restore it, or move both files of the pair out of the key directory"
            )
        keys.append(_load_one(files[".pem"], files[".json"]))
    return sorted(keys, key=_activation_order)


# --- States ---------------------------------------------------------------

def _activation_order(key: SigningKey) -> tuple[datetime, datetime, str]:
    # Ties on activates_at are broken the same way by every instance.
    return (key.activates_at, key.created_at, key.kid)


def superseded_times(keys: Iterable[SigningKey]) -> dict[str, datetime]:
    """kid -> when it stops signing: the activation of the next key of its alg.

    Keys with no successor (yet) are absent. A successor may still be in the future.
    """
    by_alg: dict[str, list[SigningKey]] = {}
    for key in sorted(keys, key=_activation_order):
        by_alg.setdefault(key.alg, []).append(key)
    result = {}
    for ordered in by_alg.values():
        for key, successor in zip(ordered, ordered[1:]):
            result[key.kid] = successor.activates_at
    return result


def key_states(keys: Iterable[SigningKey], *, now: datetime,
               max_token_lifetime: int) -> list[tuple[SigningKey, KeyState]]:
    """Each key with its state at `now`, in activation order."""
    now = _aware(now)
    keys = sorted(keys, key=_activation_order)
    superseded = superseded_times(keys)
    lifetime = timedelta(seconds=max_token_lifetime)
    result = []
    for key in keys:
        until = superseded.get(key.kid)
        if key.activates_at > now:
            state = KeyState.NEXT
        elif until is None or until > now:
            state = KeyState.ACTIVE
        elif now < until + lifetime:
            state = KeyState.RETIRED
        else:
            state = KeyState.EXPIRED
        result.append((key, state))
    return result


def next_change(keys: Iterable[SigningKey], *, now: datetime, max_token_lifetime: int) -> datetime:
    """The first moment after `now` at which a key's state (see `key_states`) changes."""
    keys = tuple(keys)
    superseded = superseded_times(keys).values()
    lifetime = timedelta(seconds=max_token_lifetime)
    changes = [key.activates_at for key in keys] + [*superseded] + [until + lifetime for until in superseded]
    return min((moment for moment in changes if moment > now), default=datetime.max.replace(tzinfo=UTC))


@dataclass(frozen=True)
class _States:
    keys: tuple[SigningKey, ...]  # the snapshot they were worked out for
    states: tuple[tuple[SigningKey, KeyState], ...]
    until: datetime


# --- Writing --------------------------------------------------------------

def _prepare_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    # Keys are never committed: a directory we create ignores itself.
    _write_atomic([(directory / ".gitignore", b"# Signing keys: never commit them.\n*\n", 0o644)])


def _write_atomic(files: list[tuple[Path, bytes, int]]) -> None:
    """Write each (path, data, mode) to a temporary file in its directory, then rename them all.

    A reader sees each file whole or not at all. Everything slow (writing,
    fsync) happens before the first rename, so the renames follow each other
    within microseconds and a reader rarely catches a pair half-renamed.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, data, mode in files:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    # Make the renames durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_key(directory: Path, *, alg: str, now: datetime, activates_at: datetime) -> SigningKey:
    _check_alg(alg)
    _prepare_directory(directory)
    _, generate, _ = _ALGORITHMS[alg]
    private = generate()
    kid = _kid(alg, private)
    key = type(private).import_key(private.private_key, parameters={"kid": kid, "alg": alg, "use": "sig"})
    signing_key = SigningKey(kid=kid, alg=alg, created_at=now, activates_at=activates_at, key=key)
    pem = private.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    meta = {"kid": kid, "alg": alg, "created_at": _format_time(now), "activates_at": _format_time(activates_at)}
    # The .pem first, the .json last: a key is complete once its metadata exists.
    _write_atomic([(directory / f"{kid}.pem", pem, _PEM_MODE),
                   (directory / f"{kid}.json", (json.dumps(meta, indent=2) + "\n").encode(), _JSON_MODE)])
    _fsync_directory(directory)
    return signing_key


def ensure_keys(directory: str | os.PathLike[str], *, algs: Iterable[str] = SUPPORTED_ALGS,
                now: datetime | None = None) -> list[SigningKey]:
    """Give every alg in `algs` a key that signs from now on, unless it already has one.

    An alg whose only keys are still "next" gets a key active at once (the
    scheduled one takes over when it activates). Cheap when nothing is missing:
    it reads the directory and writes nothing. Two processes racing here can at
    worst each create a key; the newer one signs and the other is retired.

    Returns:
        The keys created ([] when every alg already had an active key).

    Raises:
        KeyringError: the directory is inconsistent (see `load_keys`) or an alg is unsupported.
    """
    now = _aware(now)
    directory = Path(directory)
    algs = list(algs)
    for alg in algs:
        _check_alg(alg)
    existing = load_keys(directory)
    created = []
    for alg in algs:
        if not any(k.alg == alg and k.activates_at <= now for k in existing):
            created.append(_create_key(directory, alg=alg, now=now, activates_at=now))
            log.info("created signing key %s (%s) in %s", created[-1].kid, alg, directory)
    return created


def rotate_key(directory: str | os.PathLike[str], *, alg: str, activation_delay: int,
               now: datetime | None = None) -> SigningKey:
    """Create a new key of `alg` that is published now and starts signing `activation_delay` seconds later.

    The delay must outlast every relying party's JWKS cache, so that none meets
    a token signed by a key it has not fetched. The key it supersedes stays
    published until every token it signed has expired.

    Raises:
        KeyringError: unsupported alg, or an inconsistent directory.
        ValueError: a negative delay.
    """
    if activation_delay < 0:
        raise ValueError("activation_delay must be zero or more seconds")
    _check_alg(alg)
    now = _aware(now)
    directory = Path(directory)
    load_keys(directory)  # refuse to add to a directory we could not read back
    key = _create_key(directory, alg=alg, now=now, activates_at=now + timedelta(seconds=activation_delay))
    log.info("rotated %s: new key %s signs from %s", alg, key.kid, _format_time(key.activates_at))
    return key


# --- The store the app keeps ------------------------------------------------

@dataclass(frozen=True)
class _Snapshot:
    fingerprint: tuple[tuple[str, int, int, int], ...] | None
    keys: tuple[SigningKey, ...]


def jwk_set(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, Any]]]:
    """A JWK Set document (RFC 7517 §5) of these keys, public members only."""
    return {"keys": [key.public_jwk() for key in keys]}


class KeyStore:
    """The keyring of one directory, cached in this process.

    A call lists the directory (one `os.scandir` and a stat per key file) when
    `rescan_interval` seconds have passed since the last listing, and reloads only
    when a name, size, inode or mtime changed, so a rotation made by the CLI, or by
    another instance sharing the volume, is seen within `rescan_interval` (0: on the
    next call). Safe to share between threads.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_token_lifetime: int,
                 rescan_interval: float = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.max_token_lifetime = max_token_lifetime
        self.rescan_interval = rescan_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(fingerprint=(), keys=())
        self._loaded = False
        self._listed_until = float("-inf")
        self._states: _States | None = None
        self._jwks: tuple[_States | None, dict[str, list[dict[str, Any]]], bytes] = (None, {"keys": []}, b"")

    def _fingerprint(self) -> tuple[tuple[str, int, int, int], ...] | None:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return None
        rows = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith((".pem", ".json")):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # removed while we listed
                continue
            rows.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(sorted(rows))

    def keys(self) -> tuple[SigningKey, ...]:
        """Every key in the directory, reloaded if the directory changed.

        If a reload fails after a successful one (a rotation caught between its
        two files, or a file removed by hand), the keys already loaded stay in
        use, the error is logged, and the next change to the directory is tried.

        Raises:
            KeyringError: the first load failed.
        """
        # An empty keyring is listed on every call: nothing can be signed until keys appear.
        if self._loaded and self._snapshot.keys and self._clock() < self._listed_until:
            return self._snapshot.keys
        fingerprint = self._fingerprint()
        self._listed_until = self._clock() + self.rescan_interval
        snapshot = self._snapshot
        if self._loaded and fingerprint == snapshot.fingerprint:
            return snapshot.keys
        with self._lock:
            snapshot = self._snapshot
            if self._loaded and fingerprint == snapshot.fingerprint:
                return snapshot.keys
            try:
                keys = tuple(load_keys(self.directory))
            except KeyringError as err:
                if not self._loaded:
                    raise
                # Remember the broken listing too: log once, retry when the directory changes again.
                log.error("could not reload signing keys, still using the previous ones: %s", err)
                self._snapshot = _Snapshot(fingerprint=fingerprint, keys=snapshot.keys)
                return snapshot.keys
            self._snapshot = _Snapshot(fingerprint=fingerprint, keys=keys)
            self._loaded = True
            return keys

    def states(self, now: datetime | None = None) -> list[tuple[SigningKey, KeyState]]:
        """Every key with its state at `now` (see `key_states`); by default now, which is worked out
        again only once the keys change or one of them reaches its next state (every token signed
        and every introspection asks)."""
        if now is not None:
            return key_states(self.keys(), now=_aware(now), max_token_lifetime=self.max_token_lifetime)
        return list(self._states_now().states)

    def _states_now(self) -> _States:
        keys, now = self.keys(), _utcnow()
        known = self._states
        if known is None or known.keys is not keys or now >= known.until:
            states = key_states(keys, now=now, max_token_lifetime=self.max_token_lifetime)
            known = self._states = _States(keys, tuple(states), next_change(keys, now=now,
                                                                          max_token_lifetime=self.max_token_lifetime))
        return known

    def signing_key(self, alg: str, now: datetime | None = None) -> SigningKey:
        """The key that signs `alg` tokens at `now`.

        Raises:
            NoSigningKey: no key of `alg` has activated yet.
        """
        for key, state in self.states(now):
            if key.alg == alg and state is KeyState.ACTIVE:
                return key
        raise NoSigningKey(
            f"no active {alg} signing key in {self.directory}; "
            f"run `flask keys rotate --alg {alg} --now` (or `flask keys ensure`)"
        )

    def published(self, now: datetime | None = None) -> list[SigningKey]:
        """The keys JWKS publishes at `now`: next, active and retired-but-unexpired, newest first."""
        return [key for key, state in reversed(self.states(now)) if state in PUBLISHED_STATES]

    def jwks(self, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set document (RFC 7517 §5) of the published keys, public members only. By default
        now's, built again only when the keys' states change: the same document until then, which
        callers read and never modify."""
        if now is not None:
            return jwk_set(self.published(now))
        return self._current_jwks()[1]

    def jwks_json(self) -> bytes:
        """Now's JWK Set as the JWKS endpoint serves it (compact JSON), serialised
        once per change of the keys' states like the document itself."""
        return self._current_jwks()[2]

    def _current_jwks(self) -> tuple[_States | None, dict[str, list[dict[str, Any]]], bytes]:
        current = self._states_now()
        built = self._jwks
        if built[0] is not current:
            document = jwk_set(key for key, state in reversed(current.states) if state in PUBLISHED_STATES)
            body = json.dumps(document, separators=(",", ":")).encode()
            built = self._jwks = (current, document, body)
        return built

    def find(self, kid: str, now: datetime | None = None) -> SigningKey | None:
        """The published key with this kid, or None (unknown, or expired and no longer published)."""
        for key in self.published(now):
            if key.kid == kid:
                return key
        return None
