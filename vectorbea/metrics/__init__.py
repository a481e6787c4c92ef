"""Prometheus metrics at /metrics.

- `events`: counters and the step latency histogram, counted from the events each append
  records (an AFTER_APPEND hook), so they agree with the event log by construction.
- `sockets`: open websocket connections.
- `scrape`: figures read when /metrics is scraped (queues in Redis, workers, runs due).
- `views`: /metrics itself, for a bearer token or an allowed network.

Every process of a host writes its own files in VECTORBEA_METRICS_DIR (prometheus_client's
multiprocess mode) and /metrics adds them up, so counters count what every web, worker and
scheduler process of the host recorded since the directory was cleared.
"""
