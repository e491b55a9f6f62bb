"""The HTTP plumbing: middlewares, the request-head deadline, JSON bodies and query parameters."""
