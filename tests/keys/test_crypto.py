"""Envelope encryption: AES-256-GCM with associated data that binds each ciphertext to its
workspace, key id and version. Every failure fails closed, with no plaintext in the error."""

from uuid import uuid4

import pytest

from tests.keys.support import assert_no_leak, canary
from vectorbea.keys import crypto
from vectorbea.keys.crypto import DecryptionFailed

MASTER = b"m" * 32
OTHER_MASTER = b"o" * 32


def flip_bit(blob: bytes, index: int) -> bytes:
    data = bytearray(blob)
    data[index] ^= 0x01
    return bytes(data)


def test_a_key_round_trips_and_each_encryption_uses_a_fresh_nonce():
    workspace, key_id, value = uuid4(), uuid4(), canary()
    data_key = crypto.new_data_key()
    first = crypto.encrypt_key(data_key, workspace, key_id, value)
    second = crypto.encrypt_key(data_key, workspace, key_id, value)
    assert first[: crypto.NONCE_BYTES] != second[: crypto.NONCE_BYTES]
    assert first != second
    assert value.encode() not in first
    assert crypto.decrypt_key(data_key, workspace, key_id, first) == value
    assert crypto.decrypt_key(data_key, workspace, key_id, second) == value


def test_a_data_key_is_wrapped_by_the_master_key_named_by_its_id():
    workspace = uuid4()
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap_data_key(data_key, workspace, MASTER)
    kid = crypto.master_key_id(MASTER)
    assert len(kid) == 8 and kid != crypto.master_key_id(OTHER_MASTER)
    assert crypto.unwrap_data_key(wrapped, workspace, kid, [OTHER_MASTER, MASTER]) == data_key


@pytest.mark.parametrize("index", [0, 5, crypto.NONCE_BYTES, crypto.NONCE_BYTES + 3, -1])
def test_a_flipped_bit_anywhere_fails_closed_without_the_plaintext(index):
    workspace, key_id, value = uuid4(), uuid4(), canary()
    data_key = crypto.new_data_key()
    blob = crypto.encrypt_key(data_key, workspace, key_id, value)
    with pytest.raises(DecryptionFailed) as caught:
        crypto.decrypt_key(data_key, workspace, key_id, flip_bit(blob, index))
    assert_no_leak(str(caught.value), value, "the error")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_ciphertext_copied_to_another_row_or_workspace_does_not_decrypt():
    workspace, other_workspace, key_id, other_key = uuid4(), uuid4(), uuid4(), uuid4()
    value = canary()
    data_key = crypto.new_data_key()
    blob = crypto.encrypt_key(data_key, workspace, key_id, value)
    for ws, kid in [(other_workspace, key_id), (workspace, other_key)]:
        with pytest.raises(DecryptionFailed) as caught:
            crypto.decrypt_key(data_key, ws, kid, blob)
        assert_no_leak(str(caught.value), value, "the error")


def test_a_wrapped_data_key_is_bound_to_its_workspace_and_master_key():
    workspace, other = uuid4(), uuid4()
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap_data_key(data_key, workspace, MASTER)
    kid = crypto.master_key_id(MASTER)
    with pytest.raises(DecryptionFailed, match="encrypted under another key or for another"):
        crypto.unwrap_data_key(wrapped, other, kid, [MASTER])
    with pytest.raises(DecryptionFailed, match="not in VECTORBEA_MASTER_KEY"):
        crypto.unwrap_data_key(wrapped, workspace, kid, [OTHER_MASTER])
    # A different key claiming the same id still fails: the id only picks the key.
    with pytest.raises(DecryptionFailed):
        crypto.unwrap_data_key(
            wrapped, workspace, crypto.master_key_id(OTHER_MASTER), [OTHER_MASTER]
        )
    with pytest.raises(DecryptionFailed, match="truncated"):
        crypto.unwrap_data_key(wrapped[:8], workspace, kid, [MASTER])
