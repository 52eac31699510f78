"""The task collection shared by ``inv`` (root tasks.py), ``fab`` and ``jupyter-lifecycle``."""

from invoke.collection import Collection

from . import adopt, audit, cull, fleet, project, remote, server, service, supervise

namespace = Collection(
    project.bootstrap, project.start, project.stop, project.restart, project.logs,
    fleet.status, fleet.ports, fleet.orphans, fleet.which, fleet.stop_all, fleet.start_all,
    fleet.config, fleet.discover, remote.open_, remote.tunnels, remote.close, remote.trust, server.stop_server,
    audit.audit, adopt.adopt, cull.cull, supervise.supervise, service.service,
)
