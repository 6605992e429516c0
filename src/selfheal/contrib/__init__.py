"""Integrations with what services run on, each in its own sub-package."""
