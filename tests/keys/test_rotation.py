"""rotate_master_key re-wraps every data key under the newest master key, row by row;
afterwards the old master key can be removed and everything still decrypts."""

import base64
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.keys.support import canary
from vectorbea.keys import vault
from vectorbea.keys.crypto import DecryptionFailed, master_key_id
from vectorbea.keys.models import Keyring
from vectorbea.llm.keys import provider_key

pytestmark = pytest.mark.django_db

OLD = b"old-master-key-for-rotation-test"
NEW = b"new-master-key-for-rotation-test"


def rotate() -> str:
    out = StringIO()
    call_command("rotate_master_key", stdout=out)
    return out.getvalue()


def test_rows_written_under_the_old_master_key_decrypt_before_and_after_rotation(
    settings, acme, globex, alice, bob
):
    settings.VECTORBEA_MASTER_KEYS = [OLD]
    written = {
        (acme.id, "openai"): vault.add_key(acme, "openai", canary(), "", alice),
        (acme.id, "anthropic"): vault.add_key(acme, "anthropic", canary("sk-ant-"), "", alice),
        (globex.id, "openai"): vault.add_key(globex, "openai", canary(), "", bob),
    }
    values = {where: provider_key(*where).value for where in written}
    secret = canary("ghp_")
    vault.set_secret(acme, "TOKEN", secret, alice)
    assert set(Keyring.objects.values_list("wrapped_by", flat=True)) == {master_key_id(OLD)}

    settings.VECTORBEA_MASTER_KEYS = [NEW, OLD]  # the new key first, the old one still there
    assert {where: provider_key(*where).value for where in written} == values
    output = rotate()
    assert "2 workspace data key(s) to re-wrap" in output
    assert f"You can now remove {master_key_id(OLD)}" in output
    assert set(Keyring.objects.values_list("wrapped_by", flat=True)) == {master_key_id(NEW)}
    assert Keyring.objects.filter(rewrapped_at__isnull=True).count() == 0
    assert {where: provider_key(*where).value for where in written} == values

    settings.VECTORBEA_MASTER_KEYS = [NEW]  # the old key retired
    assert {where: provider_key(*where).value for where in written} == values
    assert vault.secret_values(acme.id, ["TOKEN"]) == {"TOKEN": secret}
    # Keys added from now on use the new master key too.
    fresh = canary()
    vault.add_key(globex, "anthropic", fresh, "", bob)
    assert provider_key(globex.id, "anthropic").value == fresh


def test_it_is_idempotent(settings, acme, alice):
    settings.VECTORBEA_MASTER_KEYS = [OLD]
    value = canary()
    vault.add_key(acme, "openai", value, "", alice)
    settings.VECTORBEA_MASTER_KEYS = [NEW, OLD]
    rotate()
    before = Keyring.objects.get(workspace=acme).wrapped_data_key
    output = rotate()
    assert "0 workspace data key(s) to re-wrap" in output
    assert Keyring.objects.get(workspace=acme).wrapped_data_key == before
    assert vault.rewrap(acme.id) is False
    settings.VECTORBEA_MASTER_KEYS = [NEW]
    assert provider_key(acme.id, "openai").value == value


def test_without_rotation_removing_the_old_key_fails_closed(settings, acme, alice):
    settings.VECTORBEA_MASTER_KEYS = [OLD]
    vault.add_key(acme, "openai", canary(), "", alice)
    settings.VECTORBEA_MASTER_KEYS = [NEW]
    with pytest.raises(DecryptionFailed, match="not in VECTORBEA_MASTER_KEY"):
        provider_key(acme.id, "openai")
    with pytest.raises(CommandError, match="could not be re-wrapped"):
        rotate()


def test_the_settings_decode_master_keys_newest_first():
    from vectorbea.settings import master_keys

    encoded = [base64.urlsafe_b64encode(key).decode() for key in (NEW, OLD)]
    assert master_keys(encoded) == [NEW, OLD]
