import os
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class MetricsConfig(AppConfig):
    name = "vectorbea.metrics"

    def ready(self) -> None:
        from prometheus_client import values

        from vectorbea.eventlog import hooks
        from vectorbea.metrics.events import count_appended

        if not getattr(values.ValueClass, "_multiprocess", False):
            raise ImproperlyConfigured(
                "prometheus_client was imported before the settings set "
                "PROMETHEUS_MULTIPROC_DIR: this process's metrics would not reach /metrics."
            )
        directory = Path(settings.VECTORBEA_METRICS_DIR)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"VECTORBEA_METRICS_DIR ({directory}) cannot be created: {exc.strerror}"
            ) from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ImproperlyConfigured(f"VECTORBEA_METRICS_DIR ({directory}) is not writable.")
        hooks.register_after_commit(count_appended)
