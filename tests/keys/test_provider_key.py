"""provider_key(): the one way to a plaintext key. A workspace's own key first, then the
installation's unless the workspace requires its own; every use is recorded."""

import pytest
from django.db import connection

from tests.keys.support import assert_no_leak, canary
from vectorbea.keys import vault
from vectorbea.keys.crypto import DecryptionFailed
from vectorbea.keys.models import Keyring, ProviderKey
from vectorbea.keys.redaction import KNOWN
from vectorbea.llm.keys import MissingKey, OwnKeyRequired, provider_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_platform_keys(settings):
    settings.VECTORBEA_OPENAI_API_KEY = ""
    settings.VECTORBEA_ANTHROPIC_API_KEY = ""


def test_a_workspace_key_is_decrypted_remembered_and_its_use_recorded(acme, alice):
    value = canary()
    key = vault.add_key(acme, "openai", value, "Production", alice)
    KNOWN.secrets.discard(value)  # as in a worker that never saw the form

    usable = provider_key(acme.id, "openai")

    assert usable.value == value
    assert usable.key_id == str(key.id) and usable.last_four == value[-4:]
    assert value not in repr(usable)
    assert value in KNOWN.secrets
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_four == value[-4:]
    assert value.encode() not in bytes(key.ciphertext)


def test_only_the_last_four_are_stored_in_the_clear(acme, alice):
    value = canary()
    vault.add_key(acme, "anthropic", value, "", alice)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM keys_providerkey")
        rows = repr(cursor.fetchall())
        cursor.execute("SELECT * FROM keys_keyring")
        rows += repr(cursor.fetchall())
    assert_no_leak(rows, value, "the keys tables")


def test_adding_a_key_replaces_the_active_one_and_revoked_keys_are_never_used(
    acme, alice, no_platform_keys
):
    first = vault.add_key(acme, "openai", canary(), "", alice)
    second_value = canary()
    second = vault.add_key(acme, "openai", second_value, "", alice)
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert provider_key(acme.id, "openai").value == second_value

    assert vault.revoke_key(second) is True
    assert vault.revoke_key(second) is False
    with pytest.raises(MissingKey):
        provider_key(acme.id, "openai")
    assert ProviderKey.objects.filter(workspace=acme).count() == 2


def test_without_a_key_it_falls_back_to_the_installation_key(acme, settings):
    settings.VECTORBEA_OPENAI_API_KEY = "sk-platform-0123456789abcdef"
    usable = provider_key(acme.id, "openai")
    assert usable.value == "sk-platform-0123456789abcdef"
    assert usable.key_id == "platform"


def test_a_workspace_that_requires_its_own_keys_never_gets_the_installation_key(acme, settings):
    settings.VECTORBEA_OPENAI_API_KEY = "sk-platform-0123456789abcdef"
    vault.set_policy(acme, require_own_keys=True)
    with pytest.raises(OwnKeyRequired) as caught:
        provider_key(acme.id, "openai")
    assert str(caught.value).startswith(
        "No OpenAI key is set for this workspace: add one in Settings → Providers"
    )
    vault.set_policy(acme, require_own_keys=False)
    assert provider_key(acme.id, "openai").key_id == "platform"


def test_no_key_anywhere_is_a_clear_missing_key(acme, no_platform_keys):
    with pytest.raises(MissingKey) as caught:
        provider_key(acme.id, "anthropic")
    assert "No Anthropic key is set for this workspace" in str(caught.value)
    assert "Settings → Providers" in str(caught.value)


def test_another_workspaces_key_is_never_used(acme, globex, alice, no_platform_keys):
    vault.add_key(acme, "openai", canary(), "", alice)
    with pytest.raises(MissingKey):
        provider_key(globex.id, "openai")


def test_a_ciphertext_copied_to_another_workspaces_row_fails_closed(acme, globex, alice, bob):
    acme_value = canary()
    acme_key = vault.add_key(acme, "openai", acme_value, "", alice)
    globex_key = vault.add_key(globex, "openai", canary(), "", bob)
    ProviderKey.objects.filter(pk=globex_key.pk).update(ciphertext=acme_key.ciphertext)

    with pytest.raises(DecryptionFailed) as caught:
        provider_key(globex.id, "openai")
    assert_no_leak(str(caught.value), acme_value, "the error")
    assert str(globex_key.id) in str(caught.value)


def test_a_flipped_bit_in_the_stored_ciphertext_fails_closed(acme, alice):
    value = canary()
    key = vault.add_key(acme, "openai", value, "", alice)
    blob = bytearray(bytes(key.ciphertext))
    blob[20] ^= 0x80
    ProviderKey.objects.filter(pk=key.pk).update(ciphertext=bytes(blob))
    with pytest.raises(DecryptionFailed) as caught:
        provider_key(acme.id, "openai")
    assert_no_leak(str(caught.value), value, "the error")
    key.refresh_from_db()
    assert key.last_used_at is None  # a failed decryption is not a use


def test_a_data_key_copied_to_another_workspace_fails_closed(acme, globex, alice, bob):
    vault.add_key(acme, "openai", canary(), "", alice)
    vault.add_key(globex, "openai", canary(), "", bob)
    acme_ring = Keyring.objects.get(workspace=acme)
    Keyring.objects.filter(workspace=globex).update(
        wrapped_data_key=acme_ring.wrapped_data_key, wrapped_by=acme_ring.wrapped_by
    )
    with pytest.raises(DecryptionFailed, match=f"data key of workspace {globex.id}"):
        provider_key(globex.id, "openai")
