import sys

from django.apps import AppConfig
from django.core import checks


class KeysConfig(AppConfig):
    name = "vectorbea.keys"
    verbose_name = "Provider keys"

    def ready(self) -> None:
        from vectorbea.eventlog import hooks
        from vectorbea.keys.checks import check_master_key, refuse_to_start_without_master_key
        from vectorbea.keys.redaction import redact_events

        hooks.register_event_filter(redact_events)  # known keys never reach the log

        checks.register(check_master_key, "vectorbea_keys")
        # The test suite builds its own database after setup and checks this explicitly.
        if "pytest" not in sys.modules:
            refuse_to_start_without_master_key()
