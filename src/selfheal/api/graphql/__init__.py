"""GraphQL at ``/graphql`` (Strawberry), beside REST over the one application layer.

Same keys, scopes and tenant isolation as REST: queries need a key (any scope),
mutations the write scope; subscriptions run over WebSocket (``graphql-transport-ws``)
with the key in the ``connection_init`` payload. GraphiQL is served at ``GET
/graphql`` from files in the package (``selfheal/web/static/graphiql``), no CDN.
"""

from __future__ import annotations

from selfheal.api.graphql.router import install

__all__ = ["install"]
