"""Entry point for ``fab -H HOST TASK`` in a checkout: the same tasks as ``inv`` and ``jupyter-lifecycle``."""

from lifecycle.cli import quiet_broken_pipe
from lifecycle.tasks import namespace

quiet_broken_pipe()
ns = namespace
