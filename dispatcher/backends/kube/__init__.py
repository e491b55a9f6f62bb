"""The Kubernetes backend: Job template rendering, pod instrumentation, Jobs, reconciler."""
