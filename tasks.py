"""Entry point for ``inv`` and ``fab`` in a checkout: the same tasks as ``jupyter-lifecycle``."""

from lifecycle.tasks import namespace

ns = namespace
