"""Result objects every host operation returns (the Ansible-style contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

OK = "ok"
CHANGED = "changed"
FAILED = "failed"
SKIPPED = "skipped"
UNREACHABLE = "unreachable"
STATUSES = (OK, CHANGED, FAILED, SKIPPED, UNREACHABLE)


@dataclass
class Result:
    """One step's outcome on one host for one project.

    ``facts`` carries machine-readable data (pid, port, url without token);
    ``secret`` carries what must never be rendered by default (the token).
    """

    host: str
    project: Optional[str]
    action: str
    status: str
    msg: str = ""
    diff: Optional[Dict[str, Any]] = None
    facts: Dict[str, Any] = field(default_factory=dict)
    secret: Dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.status == CHANGED

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, UNREACHABLE)

    def to_dict(self, include_secret: bool = True) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "host": self.host,
            "project": self.project,
            "action": self.action,
            "status": self.status,
            "msg": self.msg,
            "changed": self.changed,
            "diff": self.diff,
        }
        if self.facts:
            out["facts"] = self.facts
        if include_secret and self.secret:
            out["secret"] = self.secret
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Result":
        return cls(
            host=data["host"],
            project=data.get("project"),
            action=data["action"],
            status=data["status"],
            msg=data.get("msg", ""),
            diff=data.get("diff"),
            facts=dict(data.get("facts") or {}),
            secret=dict(data.get("secret") or {}),
        )
