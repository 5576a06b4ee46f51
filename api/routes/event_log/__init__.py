"""Event log routes: the generic ingress ``/webhooks/events/{source}`` and ``/api/v1/events``."""
