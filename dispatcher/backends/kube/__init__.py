"""The Kubernetes backend: backend, API client, settings, leader here; ``jobs``, ``watch``,
``admission`` below."""
