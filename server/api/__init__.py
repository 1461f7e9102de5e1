"""HTTP API: one router per resource, collected in ``server.api.main``."""
