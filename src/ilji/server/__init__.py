"""The HTTP server. Nothing else in Ilji imports it."""
