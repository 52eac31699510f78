"""Entry point for ``inv`` and ``fab`` in a checkout: the same tasks as ``jupyter-lifecycle``."""

from lifecycle.cli import quiet_broken_pipe
from lifecycle.tasks import namespace

# `inv --list | head` and `inv TASK --help | head`: end quietly when head stops reading.
quiet_broken_pipe()
ns = namespace
