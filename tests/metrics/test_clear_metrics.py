"""manage.py clear_metrics: what scripts/run does before it starts the processes."""

from io import StringIO

from django.core.management import call_command


def test_it_removes_the_metrics_files_and_nothing_else(settings, tmp_path):
    settings.VECTORBEA_METRICS_DIR = str(tmp_path)
    for name in ("counter_101.db", "histogram_101.db", "gauge_livesum_7.db", "README"):
        (tmp_path / name).write_bytes(b"x")
    out = StringIO()

    call_command("clear_metrics", stdout=out)

    assert [path.name for path in tmp_path.iterdir()] == ["README"]
    assert out.getvalue() == f"Removed 3 metrics files from {tmp_path}.\n"
