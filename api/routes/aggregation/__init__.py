"""Data Aggregation routes: data sources, the canonical schema, ingestion health and jobs
(management, under ``/api/v1/aggregation``) and the OTLP/HTTP logs receiver (``/v1/logs``,
authenticated by a source's ingest token or an operator's API token)."""
