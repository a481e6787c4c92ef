"""Envelope encryption for provider keys and workspace secrets. Pure functions, no Django.

Each workspace has a data key (32 random bytes). The data key is wrapped (encrypted) by a
master key from VECTORBEA_MASTER_KEY; provider keys and workspace secrets are encrypted by
the data key. All use AES-256-GCM with a fresh random 96-bit nonce per encryption, stored
in front of the ciphertext. Associated data binds every ciphertext to where it belongs, so
a blob copied to another workspace's or another key's row does not decrypt:

    wrapped data key   b"vectorbea:dek:v1:<workspace id>"
    provider key       b"vectorbea:key:v1:<workspace id>:<key id>"
    workspace secret   b"vectorbea:secret:v1:<workspace id>:<secret id>"

A master key is named by its key id: the first 8 hex digits of its SHA-256. Every failure
raises DecryptionFailed, whose message names the row, never a secret.
"""

import hashlib
import os
from collections.abc import Sequence
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vectorbea.engine import VectorbeaError

NONCE_BYTES = 12
DATA_KEY_BYTES = 32
VERSION = "v1"


class DecryptionFailed(VectorbeaError):
    """A ciphertext did not decrypt: wrong key, wrong row, or tampered. Fails closed."""


def master_key_id(master_key: bytes) -> str:
    return hashlib.sha256(master_key).hexdigest()[:8]


def dek_aad(workspace_id: UUID) -> bytes:
    return f"vectorbea:dek:{VERSION}:{workspace_id}".encode()


def key_aad(workspace_id: UUID, key_id: UUID) -> bytes:
    return f"vectorbea:key:{VERSION}:{workspace_id}:{key_id}".encode()


def secret_aad(workspace_id: UUID, secret_id: UUID) -> bytes:
    return f"vectorbea:secret:{VERSION}:{workspace_id}:{secret_id}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    """Decrypt `blob` sealed by seal(); DecryptionFailed naming `what` if it does not."""
    blob = bytes(blob)
    if len(blob) <= NONCE_BYTES:
        raise DecryptionFailed(f"Could not decrypt {what}: the stored ciphertext is truncated.")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            f"Could not decrypt {what}: it was encrypted under another key or for another "
            "row, or it was altered. Nothing was used."
        ) from None


def wrap_data_key(data_key: bytes, workspace_id: UUID, master_key: bytes) -> bytes:
    return seal(master_key, data_key, dek_aad(workspace_id))


def unwrap_data_key(
    wrapped: bytes, workspace_id: UUID, wrapped_by: str, master_keys: Sequence[bytes]
) -> bytes:
    """The data key of `workspace_id`, unwrapped with the master key whose id is
    `wrapped_by` (one of `master_keys`)."""
    what = f"the data key of workspace {workspace_id}"
    for master_key in master_keys:
        if master_key_id(master_key) == wrapped_by:
            data_key = open_sealed(master_key, wrapped, dek_aad(workspace_id), what)
            if len(data_key) != DATA_KEY_BYTES:
                raise DecryptionFailed(f"Could not decrypt {what}: it has the wrong length.")
            return data_key
    raise DecryptionFailed(
        f"Could not decrypt {what}: it is wrapped by master key {wrapped_by}, which is not "
        "in VECTORBEA_MASTER_KEY."
    )


def encrypt_key(data_key: bytes, workspace_id: UUID, key_id: UUID, value: str) -> bytes:
    return seal(data_key, value.encode(), key_aad(workspace_id, key_id))


def decrypt_key(data_key: bytes, workspace_id: UUID, key_id: UUID, blob: bytes) -> str:
    what = f"provider key {key_id} of workspace {workspace_id}"
    return open_sealed(data_key, blob, key_aad(workspace_id, key_id), what).decode()


def encrypt_secret(data_key: bytes, workspace_id: UUID, secret_id: UUID, value: str) -> bytes:
    return seal(data_key, value.encode(), secret_aad(workspace_id, secret_id))


def decrypt_secret(data_key: bytes, workspace_id: UUID, secret_id: UUID, blob: bytes) -> str:
    what = f"secret {secret_id} of workspace {workspace_id}"
    return open_sealed(data_key, blob, secret_aad(workspace_id, secret_id), what).decode()
