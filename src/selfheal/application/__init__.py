"""The one application layer: what the REST routes and the GraphQL resolvers both call.

Each operation lives here once, tenant first, and answers with the public shapes of
``selfheal.api.schemas``; the two APIs only translate requests and answers (and REST
its status codes). Neither reaches into storage or the runtime for an operation this
layer offers, so both give the same answer and the same error for the same request.

Modules by resource: ``services``, ``incidents``, ``actions``, ``catalog``,
``controls`` (pause, resume, silences), ``insights``, ``fleet``; ``paging`` holds the
cursor both APIs share.
"""

from __future__ import annotations
