"""Payment Gateway routes: the Stripe webhook and ``/api/v1/settlements``."""
