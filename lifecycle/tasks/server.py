"""stop-server: stop one Jupyter server by port or pid, whichever project it lies in, or none."""

from __future__ import annotations

from typing import Any

from .. import transport
from ..errors import LifecycleError
from ..host.results import UNREACHABLE, Result
from ..inventory import LOCAL
from ..report import Reporter
from ..selection import one_host
from .common import context_host, finish, lc_task, load
from .flags import SECONDS, SERVER


@lc_task(kinds={"target": SERVER, "timeout": SECONDS},
         help={"target": "the server's port or pid (say port:N or pid:N when a number could be both)",
               "host": "the inventory host the server runs on (default: this machine)",
               "timeout": "seconds from the graceful request to SIGKILL (default 10)"})
def stop_server(c: Any, target: str, host: str | None = None, timeout: float | None = None,
                check: bool = False, json: bool = False) -> None:
    """Stop one Jupyter server by port or pid, like `jupyter server stop`, kernels reaped."""
    reporter = Reporter("stop-server", as_json=json)
    inv, forced = context_host(c, load(reporter, c))
    where = forced or one_host(inv, host or LOCAL, "stop-server")
    # With the other hosts' projects: a server one of them tracks on this machine is that project's.
    known, peers = transport.known_and_peers(inv, [where])
    options = {"target": target, "check": check, "timeout": timeout}
    answer = transport.call(inv, where, transport.build_request("stop-server", where, [], options, known, peers),
                            reporter.event)
    if "unreachable" in answer:
        result = Result(host=where, project=None, action="stop-server", status=UNREACHABLE,
                        msg=str(answer["unreachable"]))
        reporter.event({"event": "result", "result": result.to_dict()})
        finish(reporter, [result])
        return
    if "error" in answer:
        raise LifecycleError(f"host {where}: {answer['error']}")
    finish(reporter, [Result.from_dict(d) for d in answer["results"]])
