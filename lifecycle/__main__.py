"""``python -m lifecycle``: the same program as the installed ``jupyter-lifecycle`` command."""

from .entry import main

main()
