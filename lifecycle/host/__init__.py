"""The host layer: runs ON the target machine (in-process locally, over SSH remotely).

It depends only on the standard library and psutil, stays compatible with
Python 3.9 (the oldest interpreter a remote dev box may have), and never
imports invoke, fabric, jinja2 or tabulate.  Its entry point is
``python -m lifecycle.host``: one JSON request in, one JSON document out.
"""
