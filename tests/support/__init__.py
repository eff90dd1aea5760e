"""Helpers the tests share: a test app, real processes that are always cleaned up, raw sockets."""
