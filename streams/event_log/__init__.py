"""The event log: any JSON posted to ``/webhooks/events/{source}``, stored once.

``rows`` is the pure work (a record in, its ``inbound_events`` row out); ``pipeline`` is the
``event-log`` pipeline that writes it.
"""
