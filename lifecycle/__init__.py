"""jupyter-lifecycle: own the whole life of every Jupyter server you run."""

__version__ = "0.1.0"
