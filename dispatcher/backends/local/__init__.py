"""The local backend: the same wrapper and sidecar as a pod, run as processes."""
