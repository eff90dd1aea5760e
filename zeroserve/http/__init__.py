"""HTTP/1.1 proxy engine shared by the queue-proxy and the activator."""
