"""Entry point for ``fab -H HOST TASK`` in a checkout: the same tasks as ``inv`` and ``jupyter-lifecycle``."""

from lifecycle.tasks import namespace

ns = namespace
