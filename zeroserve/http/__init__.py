"""The HTTP/1.1 proxy engine the queue-proxy and the activator share (docs/http.md).

``server`` (client connections, the ``Handler`` a hop implements, the ``Server`` and its
sweeper), ``upstream`` (keep-alive connections to the next hop and their pool, typed
against the ``Downstream`` Protocol), ``framing`` (the pure HTTP/1.1 decisions),
``exchange`` (one request's state and the shared ``Timeouts``/``Limits``), ``headers``
(hop-by-hop rules, ``Forwarded``, error attribution) and ``routes`` (small local
endpoints on the same engine).
"""
