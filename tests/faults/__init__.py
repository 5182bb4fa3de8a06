"""Fault-injection suite: a fault proxy in front of the loopback S3 server."""
