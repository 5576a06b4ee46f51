"""``/api/v1`` routes of the SaaS Notifications service."""
