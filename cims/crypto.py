"""Encryption at rest of single values, and blind indexes to find them by.

A value is sealed with AES-256-GCM under the newest key of the keyring:

    format (1 byte, 0x01) | key version (1 byte) | nonce (12 bytes) | ciphertext and tag

The two header bytes name the key, so values written under older keys stay readable while
`rotate_keys` moves them to the newest one. The associated data binds a ciphertext to its place,
e.g. b"customers_customer.phone.<row uuid>" (plus the header), so a ciphertext copied to another
row or column fails to decrypt instead of showing the wrong person's number.

Blind indexes are HMAC-SHA256 of a normalised value under a separate key, one derived key per
purpose, so the same string gives different indexes in different columns. They let the database
find exact matches (and enforce uniqueness) without ever seeing the value.

Keys come from settings (FIELD_ENCRYPTION_KEYS, BLIND_INDEX_KEY), that is from the environment
or secret files, never from the database. A development checkout without them generates its own
key file (FIELD_ENCRYPTION_DEV_KEYS_FILE, var/keys/field-keys.json) on first use.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

FORMAT = 0x01
HEADER_SIZE = 2
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
MAX_VERSION = 255
PURPOSES = ("email", "phone", "phone_last4")
KEY_SETTINGS = ("FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "FIELD_ENCRYPTION_DEV_KEYS_FILE")


class DecryptionError(ValueError):
    """A ciphertext that cannot be opened: altered, truncated, or belonging to another place."""


class MissingKeyError(ImproperlyConfigured):
    """A ciphertext names a key version the keyring lacks: a key was retired too early."""


@dataclass(frozen=True)
class Keyring:
    ciphers: dict  # key version -> AESGCM
    current: int  # the version new values are encrypted with
    index_macs: dict  # purpose -> HMAC-SHA256 keyed for it, copied for each value (the fastest)


@functools.cache
def keyring():
    """The keys from settings, loaded once per process (`reset` forgets them)."""
    keys_text, index_text = settings.FIELD_ENCRYPTION_KEYS, settings.BLIND_INDEX_KEY
    if not (keys_text and index_text):
        dev_file = settings.FIELD_ENCRYPTION_DEV_KEYS_FILE
        if not dev_file:
            missing = [
                name
                for name, value in (
                    ("FIELD_ENCRYPTION_KEYS", keys_text),
                    ("BLIND_INDEX_KEY", index_text),
                )
                if not value
            ]
            raise ImproperlyConfigured(
                f"{' and '.join(missing)} must be set when DEBUG is off: the keys that encrypt "
                "customers' phone, email, birthday and street address and index them for search. "
                "Generate a key with `openssl rand -base64 32`; see docs/configuration.md."
            )
        development = development_keys(Path(dev_file))
        keys_text = keys_text or development["FIELD_ENCRYPTION_KEYS"]
        index_text = index_text or development["BLIND_INDEX_KEY"]
    keys = parse_keys(keys_text)
    index_key = _decode_key(index_text, "BLIND_INDEX_KEY")
    if index_key in keys.values():
        raise ImproperlyConfigured(
            "BLIND_INDEX_KEY must differ from every key in FIELD_ENCRYPTION_KEYS."
        )
    return Keyring(
        ciphers={version: AESGCM(key) for version, key in keys.items()},
        current=max(keys),
        index_macs={
            purpose: hmac.new(
                hmac.digest(index_key, f"cims blind index: {purpose}".encode(), "sha256"),
                digestmod=hashlib.sha256,
            )
            for purpose in PURPOSES
        },
    )


def reset():
    """Forget the loaded keys, so the next use reads settings again (tests, key changes)."""
    keyring.cache_clear()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting, **kwargs):
    if setting in KEY_SETTINGS:
        reset()


def parse_keys(text):
    """{version: key} from "2:<base64> 1:<base64>" (comma or white space between entries)."""
    keys = {}
    for entry in re.split(r"[\s,]+", text.strip()):
        version, sep, encoded = entry.partition(":")
        if not (sep and version.isdigit() and 1 <= int(version) <= MAX_VERSION):
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEYS must be entries of the form <version>:<base64 key>, "
                f"with versions from 1 to {MAX_VERSION}, e.g. 1:{'A' * 43}=."
            )
        if int(version) in keys:
            raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS names version {version} twice.")
        keys[int(version)] = _decode_key(encoded, f"Key version {version} of FIELD_ENCRYPTION_KEYS")
    return keys


def _decode_key(encoded, name):
    try:
        key = base64.b64decode(encoded.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ImproperlyConfigured(
            f"{name} must be {KEY_SIZE} random bytes in base64 (`openssl rand -base64 32`)."
        )
    return key


def new_key():
    """A fresh random key in the form the settings take."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode()


def development_keys(path):
    """The keys of a development checkout, generated into `path` (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        content = json.dumps(
            {"FIELD_ENCRYPTION_KEYS": f"1:{new_key()}", "BLIND_INDEX_KEY": new_key()}, indent=2
        )
        # Written aside and linked into place, so that two processes starting together (test
        # workers) agree on one file and neither reads a half-written one.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(content + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    try:
        keys = json.loads(path.read_text())
        return {name: keys[name] for name in ("FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY")}
    except (OSError, ValueError, KeyError) as error:
        raise ImproperlyConfigured(
            f"The development key file {path} is unreadable ({error}). Delete it together with "
            "the development database, whose values it encrypted, to start afresh."
        ) from error


def row_aad(table, column, pk):
    """The associated data that binds a value to one column of one row."""
    return f"{table}.{column}.{pk}".encode()


def encrypt(plaintext, aad):
    """Seal `plaintext` (bytes or str) under the newest key, bound to `aad`."""
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    ring = keyring()
    header = bytes((FORMAT, ring.current))
    nonce = os.urandom(NONCE_SIZE)
    return header + nonce + ring.ciphers[ring.current].encrypt(nonce, plaintext, header + aad)


def decrypt(blob, aad):
    """The plaintext bytes of `blob`; DecryptionError if it was altered or belongs elsewhere."""
    blob = bytes(blob)
    if len(blob) < HEADER_SIZE + NONCE_SIZE + TAG_SIZE or blob[0] != FORMAT:
        raise DecryptionError("The value is not a CIMS ciphertext.")
    cipher = keyring().ciphers.get(blob[1])
    if cipher is None:
        raise MissingKeyError(
            f"A value is encrypted with key version {blob[1]}, which FIELD_ENCRYPTION_KEYS "
            "lacks. Put the key back; retire a key only after `rotate_keys` has finished."
        )
    nonce = blob[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]
    try:
        return cipher.decrypt(nonce, blob[HEADER_SIZE + NONCE_SIZE :], blob[:HEADER_SIZE] + aad)
    except InvalidTag:
        raise DecryptionError(
            f"The value does not decrypt for {aad.decode(errors='replace')}: it was altered or "
            "copied from another row or column."
        ) from None


def key_version(blob):
    """The key version a ciphertext names."""
    if not blob or len(blob) < HEADER_SIZE or blob[0] != FORMAT:
        raise DecryptionError("The value is not a CIMS ciphertext.")
    return blob[1]


def current_version():
    return keyring().current


def blind_index(value, purpose):
    """The keyed hash of an already normalised value, for exact matches in one column."""
    mac = keyring().index_macs[purpose].copy()
    mac.update(value.encode())
    return mac.digest()


@checks.register(checks.Tags.security)
def check_keys(app_configs=None, **kwargs):
    """Refuse to run (migrate, runserver, check) without usable keys."""
    try:
        keyring()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="cims.E001")]
    return []
