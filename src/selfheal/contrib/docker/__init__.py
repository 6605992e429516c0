"""Docker: containers acted on through the Docker Engine API, followed through its events.

See ``client`` (the API over its Unix socket), ``executor`` (restart, start,
stop, scale) and ``watch`` (the events stream: a container that dies opens an
incident before any probe fails).
"""
