"""The one failure of reaching a host, shared by the SSH modules."""

from __future__ import annotations


class HostUnreachable(Exception):
    """The host could not be reached or could not run the host layer; the message says why."""
