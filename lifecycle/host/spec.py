"""ProjectSpec: everything the host layer needs to know about one project.

The controller resolves the inventory (defaults applied, templates rendered)
and sends specs as plain JSON; the host layer never reads the inventory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    path: str
    venv: str = ".venv"
    python: str = "python3"
    app: str = "lab"
    port_range: Tuple[int, int] = (8888, 8899)
    ip: str = "127.0.0.1"
    notebook_dir: str = "."
    requirements: Tuple[str, ...] = ("jupyterlab", "ipykernel")
    requirements_file: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    args: Tuple[str, ...] = ()
    stop_timeout: float = 10.0
    start_timeout: float = 60.0
    display_name: str = ""
    gitignore_block: str = ""
    # Keeping the server alive and lean; seconds and bytes (the controller parsed the human units).
    idle_timeout: Optional[float] = None
    kernel_idle_timeout: Optional[float] = None
    cull_connected: bool = False
    restart: str = "no"
    restart_max: int = 5
    restart_window: float = 600.0
    log_max_size: int = 10 * 1024 * 1024
    log_keep: int = 3

    @property
    def kernel_name(self) -> str:
        # jupyter_client lower-cases kernel names on install; mirror it so
        # that what we look for is what got written.
        return self.name.lower()

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["port_range"] = list(self.port_range)
        data["requirements"] = list(self.requirements)
        data["args"] = list(self.args)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ProjectSpec":
        values = dict(data)
        values["port_range"] = tuple(values.get("port_range", (8888, 8899)))
        values["requirements"] = tuple(values.get("requirements", ()))
        values["args"] = tuple(values.get("args", ()))
        values["env"] = dict(values.get("env") or {})
        return cls(**values)
