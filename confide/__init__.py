"""Confide core: settings, storage, codes and domain services.

This package knows nothing of HTTP or Celery; ``webapp`` and ``workers`` both import it.
"""
