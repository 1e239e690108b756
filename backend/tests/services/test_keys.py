"""The file-based signing keyring: real files under tmp_path; time passed as `now`."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from app.services import keys as keys_module
from app.services.keys import (
    KeyringError,
    KeyState,
    KeyStore,
    NoSigningKey,
    ensure_keys,
    key_states,
    load_keys,
    rotate_key,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MAX_LIFETIME = 3600
DELAY = 600
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(keydir: Path) -> KeyStore:
    return KeyStore(keydir, max_token_lifetime=MAX_LIFETIME)


def published_kids(store: KeyStore, now: datetime) -> set[str]:
    return {jwk["kid"] for jwk in store.jwks(now)["keys"]}


def sign(key, claims: dict) -> str:
    return jwt.encode(key.header(typ="JWT"), claims, key.key)


def verify_with_jwks(token: str, jwks: dict, now: datetime) -> dict:
    """What a relying party does: pick the key by kid from the JWKS it fetched, check exp."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(now=int(now.timestamp()), exp={"essential": True}).validate(decoded.claims)
    return decoded.claims


# --- ensure_keys ------------------------------------------------------------

def test_ensure_keys_creates_one_active_key_per_alg(keydir: Path, store: KeyStore) -> None:
    created = ensure_keys(keydir, now=T0)

    assert sorted(k.alg for k in created) == ["ES256", "RS256"]
    assert {k.kid for k in load_keys(keydir)} == {k.kid for k in created}
    for key in created:
        assert key.activates_at == T0
        assert store.signing_key(key.alg, now=T0) == key
        assert (keydir / f"{key.kid}.pem").is_file() and (keydir / f"{key.kid}.json").is_file()


def test_ensure_keys_is_idempotent(keydir: Path) -> None:
    ensure_keys(keydir, now=T0)
    listing = sorted(os.listdir(keydir))

    assert ensure_keys(keydir, now=at(60)) == []
    assert sorted(os.listdir(keydir)) == listing


def test_ensure_keys_only_for_the_algs_asked(keydir: Path) -> None:
    created = ensure_keys(keydir, algs=("ES256",), now=T0)

    assert [k.alg for k in created] == ["ES256"]
    assert [k.alg for k in ensure_keys(keydir, now=T0)] == ["RS256"]


def test_ensure_keys_when_only_a_scheduled_key_exists_adds_an_active_one(keydir: Path, store: KeyStore) -> None:
    scheduled = rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=T0)

    (created,) = ensure_keys(keydir, algs=("ES256",), now=T0)

    assert store.signing_key("ES256", now=T0) == created
    assert store.signing_key("ES256", now=at(DELAY)) == scheduled


def test_ensure_keys_marks_a_new_directory_as_never_committed(keydir: Path) -> None:
    ensure_keys(keydir, algs=("ES256",), now=T0)

    assert (keydir / ".gitignore").read_text().splitlines()[-1] == "*"
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700


# --- Files and JWKS -----------------------------------------------------------

def test_private_key_files_are_mode_0600_and_pkcs8(keydir: Path) -> None:
    for key in ensure_keys(keydir, now=T0):
        pem = keydir / f"{key.kid}.pem"
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        assert pem.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        meta = json.loads((keydir / f"{key.kid}.json").read_text())
        assert meta == {"kid": key.kid, "alg": key.alg,
                        "created_at": "2030-01-01T00:00:00.000000Z", "activates_at": "2030-01-01T00:00:00.000000Z"}
    assert not [name for name in os.listdir(keydir) if name.endswith(".tmp")]


def test_jwks_never_contains_private_members(keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, now=T0)
    rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=at(1))

    jwks = store.jwks(at(1))

    assert {jwk["alg"] for jwk in jwks["keys"]} == {"RS256", "ES256"}
    assert len(jwks["keys"]) == 3
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk), jwk
        assert jwk["use"] == "sig" and jwk["kty"] == {"RS256": "RSA", "ES256": "EC"}[jwk["alg"]]
    assert json.dumps(jwks)  # serialisable as is


def test_kid_is_the_alg_and_the_rfc7638_thumbprint(keydir: Path) -> None:
    for key in ensure_keys(keydir, now=T0):
        assert key.kid == f"{key.alg.lower()}-{key.key.thumbprint()}"
        assert key.public_jwk()["kid"] == key.kid


# --- Rotation -----------------------------------------------------------------

def test_rotate_publishes_the_new_key_before_it_signs(keydir: Path, store: KeyStore) -> None:
    old = ensure_keys(keydir, algs=("RS256",), now=T0)[0]
    rotated_at = at(3600)
    new = rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=rotated_at)

    assert new.activates_at == rotated_at + timedelta(seconds=DELAY)
    assert published_kids(store, rotated_at) == {old.kid, new.kid}
    assert store.signing_key("RS256", now=rotated_at) == old
    assert store.signing_key("RS256", now=new.activates_at - timedelta(microseconds=1)) == old
    assert store.signing_key("RS256", now=new.activates_at) == new
    assert dict((k.kid, s) for k, s in store.states(rotated_at)) == {old.kid: KeyState.ACTIVE,
                                                                    new.kid: KeyState.NEXT}


def test_retired_key_stays_published_until_its_tokens_have_expired(keydir: Path, store: KeyStore) -> None:
    old = ensure_keys(keydir, algs=("RS256",), now=T0)[0]
    new = rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=at(3600))
    superseded = new.activates_at
    gone = superseded + timedelta(seconds=MAX_LIFETIME)

    assert published_kids(store, superseded) == {old.kid, new.kid}
    assert published_kids(store, gone - timedelta(seconds=1)) == {old.kid, new.kid}
    assert dict(store.states(gone - timedelta(seconds=1)))[old] == KeyState.RETIRED
    assert published_kids(store, gone) == {new.kid}
    assert dict(store.states(gone))[old] == KeyState.EXPIRED
    assert store.find(old.kid, now=gone) is None
    assert (keydir / f"{old.kid}.pem").exists()  # expired keys are left for the operator to delete


def test_token_signed_before_rotation_verifies_against_jwks_until_it_expires(keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, algs=("RS256",), now=T0)
    rotated_at = at(3600)
    new = rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=rotated_at)
    # The last moment the old key signs, with the longest lifetime any token has.
    issued_at = new.activates_at - timedelta(seconds=1)
    old = store.signing_key("RS256", now=issued_at)
    expires_at = issued_at + timedelta(seconds=MAX_LIFETIME)
    token = sign(old, {"sub": "u1", "iat": int(issued_at.timestamp()), "exp": int(expires_at.timestamp())})

    for moment in (issued_at, new.activates_at, new.activates_at + timedelta(seconds=MAX_LIFETIME // 2),
                   expires_at - timedelta(seconds=1)):
        assert verify_with_jwks(token, store.jwks(moment), moment)["sub"] == "u1", moment

    # Once every token it signed has expired, the key leaves JWKS.
    after = new.activates_at + timedelta(seconds=MAX_LIFETIME)
    assert after >= expires_at
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(token, KeySet.import_key_set(store.jwks(after)))


def test_token_signed_by_the_new_key_verifies_against_jwks_fetched_before_it_signs(
        keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, algs=("ES256",), now=T0)
    new = rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=at(60))
    cached_jwks = store.jwks(at(60))  # a relying party's cache, fetched right after the rotation

    token = sign(store.signing_key("ES256", now=new.activates_at),
                 {"sub": "u2", "exp": int((new.activates_at + timedelta(seconds=60)).timestamp())})

    assert verify_with_jwks(token, cached_jwks, new.activates_at)["sub"] == "u2"


def test_rotate_with_no_delay_signs_at_once(keydir: Path, store: KeyStore) -> None:
    old = ensure_keys(keydir, algs=("ES256",), now=T0)[0]
    new = rotate_key(keydir, alg="ES256", activation_delay=0, now=at(1))

    assert store.signing_key("ES256", now=at(1)) == new
    assert dict(store.states(at(1)))[old] == KeyState.RETIRED


def test_rotate_one_alg_leaves_the_other_signing(keydir: Path, store: KeyStore) -> None:
    es256 = next(k for k in ensure_keys(keydir, now=T0) if k.alg == "ES256")
    rotate_key(keydir, alg="RS256", activation_delay=0, now=at(1))

    assert store.signing_key("ES256", now=at(1)) == es256
    assert store.signing_key("ES256", now=at(10 * MAX_LIFETIME)) == es256


def test_rotate_now_while_a_key_is_scheduled_keeps_the_schedule(keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, algs=("ES256",), now=T0)
    scheduled = rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=at(10))
    emergency = rotate_key(keydir, alg="ES256", activation_delay=0, now=at(20))

    assert store.signing_key("ES256", now=at(20)) == emergency
    assert store.signing_key("ES256", now=scheduled.activates_at) == scheduled
    assert dict(store.states(scheduled.activates_at))[emergency] == KeyState.RETIRED


@pytest.mark.parametrize("kwargs, error", [
    ({"alg": "HS256", "activation_delay": 0}, KeyringError),
    ({"alg": "RS256", "activation_delay": -1}, ValueError),
])
def test_rotate_rejects_bad_arguments(keydir: Path, kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        rotate_key(keydir, now=T0, **kwargs)
    assert not keydir.exists() or not load_keys(keydir)


def test_naive_now_is_refused(keydir: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_keys(keydir, now=datetime(2030, 1, 1))


def test_key_states_orders_by_activation(keydir: Path) -> None:
    first = ensure_keys(keydir, algs=("ES256",), now=T0)[0]
    second = rotate_key(keydir, alg="ES256", activation_delay=0, now=at(10))
    third = rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=at(20))

    states = key_states(load_keys(keydir), now=at(20), max_token_lifetime=MAX_LIFETIME)

    assert states == [(first, KeyState.RETIRED), (second, KeyState.ACTIVE), (third, KeyState.NEXT)]


# --- KeyStore -----------------------------------------------------------------

def test_key_store_sees_a_rotation_made_by_another_process(keydir: Path) -> None:
    ensure_keys(keydir, algs=("RS256",), now=T0)
    web = KeyStore(keydir, max_token_lifetime=MAX_LIFETIME)
    other = KeyStore(keydir, max_token_lifetime=MAX_LIFETIME)
    before = web.jwks(at(60))

    # What `flask keys rotate` does, in its own process, with its own KeyStore.
    new = rotate_key(keydir, alg="RS256", activation_delay=0, now=at(60))
    assert other.signing_key("RS256", now=at(60)) == new

    assert new.kid not in {jwk["kid"] for jwk in before["keys"]}
    assert new.kid in published_kids(web, at(60))
    assert web.signing_key("RS256", now=at(60)) == new


def test_key_store_lists_the_directory_at_most_once_per_rescan_interval(keydir: Path) -> None:
    """Signing and verifying do not list the directory on every token; a rotation is still
    seen once the interval has passed, long before the new key may sign (KEY_ACTIVATION_DELAY)."""
    ensure_keys(keydir, algs=("RS256",), now=T0)
    clock = [100.0]
    store = KeyStore(keydir, max_token_lifetime=MAX_LIFETIME, rescan_interval=1, clock=lambda: clock[0])
    before = published_kids(store, at(60))

    new = rotate_key(keydir, alg="RS256", activation_delay=600, now=at(60))
    clock[0] += 0.5
    assert published_kids(store, at(60)) == before

    clock[0] += 0.5
    assert published_kids(store, at(60)) == before | {new.kid}


def test_an_empty_keyring_is_listed_again_on_every_call(keydir: Path) -> None:
    """Nothing can be signed until keys appear, so a process started before `flask keys ensure`
    sees them at once, however long its rescan interval."""
    keydir.mkdir()
    store = KeyStore(keydir, max_token_lifetime=MAX_LIFETIME, rescan_interval=60, clock=lambda: 100.0)
    assert store.keys() == ()

    ensure_keys(keydir, algs=("RS256",), now=T0)
    assert [key.alg for key in store.keys()] == ["RS256"]


def test_key_store_reuses_its_keys_while_the_directory_is_unchanged(keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, algs=("ES256",), now=T0)
    first = store.keys()

    assert store.keys() is first
    (keydir / "README.md").write_text("not a key")
    assert store.keys() is first  # other files do not count
    rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=T0)
    assert len(store.keys()) == 2


def test_key_store_keeps_the_previous_keys_when_a_reload_fails(keydir: Path, store: KeyStore) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)
    assert store.signing_key("ES256", now=T0) == key

    shutil.copy(keydir / f"{key.kid}.pem", keydir / "orphan.pem")  # a rotation caught half-written

    assert store.signing_key("ES256", now=T0) == key
    with pytest.raises(KeyringError):
        KeyStore(keydir, max_token_lifetime=MAX_LIFETIME).keys()  # a fresh process refuses it


def test_key_store_is_safe_to_share_between_threads(keydir: Path, store: KeyStore) -> None:
    ensure_keys(keydir, algs=("ES256",), now=T0)
    store.keys()
    errors: list[BaseException] = []
    done = threading.Event()

    def serve() -> None:
        try:
            while not done.is_set():
                assert store.signing_key("ES256", now=at(100)).alg == "ES256"
                assert store.jwks(at(100))["keys"]
        except Exception as err:  # reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for thread in threads:
        thread.start()
    rotated = [rotate_key(keydir, alg="ES256", activation_delay=0, now=at(i)) for i in range(1, 6)]
    done.set()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.signing_key("ES256", now=at(100)) == rotated[-1]


def test_signing_key_without_any_key_says_how_to_make_one(store: KeyStore) -> None:
    with pytest.raises(NoSigningKey, match=r"flask keys rotate --alg RS256 --now"):
        store.signing_key("RS256", now=T0)
    assert store.jwks(T0) == {"keys": []}


def test_signing_key_before_the_first_key_activates_raises(keydir: Path, store: KeyStore) -> None:
    rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=T0)

    with pytest.raises(NoSigningKey):
        store.signing_key("RS256", now=T0)
    assert len(store.jwks(T0)["keys"]) == 1  # but it is already published


def test_find_returns_published_keys_only(keydir: Path, store: KeyStore) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)

    assert store.find(key.kid, now=T0) == key
    assert store.find("no-such-kid", now=T0) is None


# --- load_keys ----------------------------------------------------------------

def test_load_keys_ignores_other_files(keydir: Path) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)
    (keydir / "README.md").write_text("Signing keys live here.")
    (keydir / ".gitkeep").touch()
    (keydir / f".{key.kid}.pem.abc.tmp").write_text("half-written")
    (keydir / "old").mkdir()

    assert load_keys(keydir) == [key]


def test_load_keys_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert load_keys(tmp_path / "nowhere") == []


@pytest.mark.parametrize("remove", [".json", ".pem"])
def test_load_keys_refuses_half_a_pair(keydir: Path, remove: str) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)
    (keydir / f"{key.kid}{remove}").unlink()

    with pytest.raises(KeyringError, match=f"{key.kid}.* has no matching {key.kid}{remove}"):
        load_keys(keydir)


def test_load_keys_refuses_a_pem_that_is_not_its_kid(keydir: Path) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)
    other = rotate_key(keydir, alg="ES256", activation_delay=0, now=at(1))
    shutil.copy(keydir / f"{other.kid}.pem", keydir / f"{key.kid}.pem")

    with pytest.raises(KeyringError, match="does not match its kid"):
        load_keys(keydir)


def test_load_keys_refuses_a_key_of_the_wrong_type(keydir: Path) -> None:
    by_alg = {k.alg: k for k in ensure_keys(keydir, now=T0)}
    rs256, es256 = by_alg["RS256"], by_alg["ES256"]
    shutil.copy(keydir / f"{rs256.kid}.pem", keydir / f"{es256.kid}.pem")

    with pytest.raises(KeyringError, match=f"{es256.kid}.pem"):
        load_keys(keydir)


@pytest.mark.parametrize("change", [
    {"kid": "renamed"},
    {"alg": "HS256"},
    {"activates_at": "tomorrow"},
    {"activates_at": "2030-01-01T00:00:00"},  # no offset
])
def test_load_keys_refuses_bad_metadata(keydir: Path, change: dict) -> None:
    (key,) = ensure_keys(keydir, algs=("ES256",), now=T0)
    meta_path = keydir / f"{key.kid}.json"
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | change))

    with pytest.raises(KeyringError, match=key.kid):
        load_keys(keydir)


def test_the_states_of_now_follow_every_change_of_state_and_of_keys(keydir: Path, store: KeyStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """states() without `now` is kept between calls: it must still change at the very moment a key
    activates, retires or expires, and as soon as a key is added."""
    old = ensure_keys(keydir, algs=("RS256",), now=T0)[0]
    new = rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=at(60))
    now = [at(60)]
    monkeypatch.setattr(keys_module, "_utcnow", lambda: now[0])
    tick = timedelta(microseconds=1)
    expiry = new.activates_at + timedelta(seconds=MAX_LIFETIME)
    for moment in (at(60), new.activates_at - tick, new.activates_at, expiry - tick, expiry):
        now[0] = moment
        assert store.states() == store.states(moment)
    assert dict(store.states())[old] == KeyState.EXPIRED and dict(store.states())[new] == KeyState.ACTIVE

    added = rotate_key(keydir, alg="ES256", activation_delay=0, now=expiry)
    assert dict(store.states())[added] == KeyState.ACTIVE


def test_the_states_of_now_follow_the_first_key_of_an_alg_as_it_activates(keydir: Path, store: KeyStore,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled key with no earlier key of its algorithm: the kept states change when it activates."""
    ensure_keys(keydir, algs=("RS256",), now=T0)
    scheduled = rotate_key(keydir, alg="ES256", activation_delay=DELAY, now=at(60))
    now = [at(60)]
    monkeypatch.setattr(keys_module, "_utcnow", lambda: now[0])
    assert dict(store.states())[scheduled] == KeyState.NEXT
    now[0] = scheduled.activates_at
    assert store.states() == store.states(scheduled.activates_at)
    assert dict(store.states())[scheduled] == KeyState.ACTIVE
    assert store.signing_key("ES256") == scheduled


def test_the_served_jwk_set_follows_every_change_of_the_published_keys(keydir: Path, store: KeyStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """jwks_json() is serialised once per change of the keys' states: it must still be now's JWK Set
    when a key is added, activates, retires and expires, and as compact JSON (what /oauth2/jwks serves)."""
    old = ensure_keys(keydir, algs=("RS256",), now=T0)[0]
    now = [at(60)]
    monkeypatch.setattr(keys_module, "_utcnow", lambda: now[0])
    first = store.jwks_json()
    new = rotate_key(keydir, alg="RS256", activation_delay=DELAY, now=at(60))
    expiry = new.activates_at + timedelta(seconds=MAX_LIFETIME)
    served = []
    for moment in (at(60), new.activates_at, expiry):
        now[0] = moment
        body = store.jwks_json()
        assert json.loads(body) == store.jwks(moment) == store.jwks()
        assert b" " not in body
        served.append({jwk["kid"] for jwk in json.loads(body)["keys"]})
    assert [jwk["kid"] for jwk in json.loads(first)["keys"]] == [old.kid]
    # published before it signs; the retired key until its tokens have expired; then the new key alone
    assert served == [{old.kid, new.kid}, {old.kid, new.kid}, {new.kid}]
