"""Worker-process observability: health endpoint, Prometheus metrics, JSON logs."""
