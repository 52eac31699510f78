"""Everything the user sees is rendered here: result lines, recap, tables, JSON."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO

from .host.results import CHANGED, FAILED, OK, SKIPPED, UNREACHABLE, Result

# Jupyter prints its token in URLs; logs, command lines and failure messages pass through this. Passwords
# (hashed ones too: argon2:$argon2id$...) and secrets given as server options are credentials as well.
_TOKEN_RE = re.compile(r"((?:token|password|secret)=)[^\s&\"'<]{8,}", re.I)
_COLORS = {OK: "32", CHANGED: "33", FAILED: "31", SKIPPED: "36", UNREACHABLE: "31"}


def _use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, status: str, stream: TextIO) -> str:
    code = _COLORS.get(status)
    return f"\033[{code}m{text}\033[0m" if code and _use_color(stream) else text


def redact(text: str) -> str:
    """Hide tokens (``token=…``, ``password=…``, ``secret=…``) unless the user asked to see them."""
    return _TOKEN_RE.sub(r"\1<hidden>", text)


# -- where a server is, seen from this machine -------------------------------------------
# A host reports its servers' URLs as seen on that host: http://127.0.0.1:8810/lab on box1 means, on
# this machine, whatever listens here on 8810. So a remote server is shown by where it is
# (box1:8810) and how to reach it from here (jlc open NAME); a local one keeps its URL.

LOCAL_HOST = "local"


def open_command(project: str, via: list[str] | None = None) -> str:
    """The command that opens ``project``'s Lab from this machine (``via``: the -H words its host needs)."""
    import shlex

    return shlex.join(["jlc", *(via or []), "open", project])


def reach(host: str, project: str | None, url: str | None, via: list[str] | None = None) -> str | None:
    """How to reach a server from this machine: its URL when local, ``jlc open NAME`` when remote;
    None when there is no server, or a remote one of no project (open cannot name it)."""
    if not url:
        return None
    if host == LOCAL_HOST:
        return url
    return open_command(project, via) if project else None


def where(host: str, port: Any) -> str:
    """Where a server is, by the host's inventory name: ``box1:8810``."""
    return f"{host}:{port}"


def token_of(token_url: str | None) -> str | None:
    if not token_url or "token=" not in token_url:
        return None
    return token_url.split("token=", 1)[1].split("&", 1)[0] or None


def server_cell(row: dict[str, Any], show_token: bool = False) -> str:
    """The URL column of status and status --watch: a local server's URL (with its token if asked
    for); for a remote one ``box1:8810 (jlc open r1)``, plus ``token=...`` if asked for."""
    url = row.get("url")
    if not url:
        return ""
    if row["host"] == LOCAL_HOST:
        return str((row.get("token_url") if show_token else None) or url)
    cell = where(row["host"], row.get("port"))
    if row.get("reach"):
        cell += f" ({row['reach']})"
    token = token_of(row.get("token_url")) if show_token else None
    return cell + (f" token={token}" if token else "")


def with_reach(row: dict[str, Any], value: str | None) -> dict[str, Any]:
    """``row`` with ``reach`` beside its ``url`` (JSON readers see them together)."""
    out: dict[str, Any] = {}
    for key, item in row.items():
        if key != "reach":
            out[key] = item
        if key == "url":
            out["reach"] = value
    if "reach" not in out:
        out["reach"] = value
    return out


def seen_from_here(r: Result, via: list[str] | None = None, hint: bool = True) -> Result:
    """A result as this machine should read it: a remote server's URL in the message becomes
    ``box1:8810`` (with how to reach it when ``hint``), and ``facts`` gains ``reach``."""
    url = r.facts.get("url")
    if not url or not r.project:
        return r
    how = reach(r.host, r.project, str(url), via)
    facts = {**r.facts, "reach": how}
    msg = r.msg
    if r.host != LOCAL_HOST:
        msg = msg.replace(str(url), where(r.host, r.facts.get("port")))
        if hint and how:
            msg += f" (reach it with '{how}')"
    return Result(host=r.host, project=r.project, action=r.action, status=r.status, msg=msg, diff=r.diff,
                  facts=facts, secret=r.secret)


def login_line(r: Result, via: list[str] | None = None) -> str:
    """The line under a result that carries the login URL (``--show-token``); a remote server's URL is
    its host's, so it says which host and how to get there from here."""
    url = r.secret["token_url"]
    if r.host == LOCAL_HOST or not r.project:
        return f"    login URL: {url}"
    return f"    login URL on {r.host}: {url} (from here: {open_command(r.project, via)})"


def result_line(r: Result, task: str) -> str:
    project = r.project or "-"
    label = project if r.action == task else f"{project}: {r.action}"
    first, *rest = (r.msg or "").splitlines() or [""]
    line = f"{r.status}: [{r.host}] {label}: {first}"
    return "\n".join([line] + ["    " + ln for ln in rest])


def recap(results: Iterable[Result]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in results:
        counts = out.setdefault(r.host, {OK: 0, CHANGED: 0, FAILED: 0, SKIPPED: 0, UNREACHABLE: 0})
        counts[r.status] = counts.get(r.status, 0) + 1
    return out


def exit_code(results: Iterable[Result]) -> int:
    statuses = {r.status for r in results}
    if UNREACHABLE in statuses:
        return 4
    return 1 if FAILED in statuses else 0


class Reporter:
    """Renders events as they arrive (thread-safe) and the final summary."""

    def __init__(self, task: str, as_json: bool = False, show_token: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.task = task
        self.as_json = as_json
        self.show_token = show_token
        # A result that carries a login URL (start) prints it on a line of its own: with --show-token,
        # and once for --foreground, whose streamed log keeps the token hidden.
        self.show_login = show_token
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.urls = self.out  # where open prints URLs (it sends everything else to stderr)
        # The words `jlc` needs before a task to reach a host named in no inventory here (-H ...).
        self.via: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._progress_shown = False
        self._last_progress = 0.0
        self._log_prefix = False
        # Steps that have begun and not ended, by (host, project): action, start time, last progress.
        self._running: dict[tuple[str, str], tuple[str, float, str]] = {}
        self._seen: list[Result] = []

    # -- live events -------------------------------------------------------
    def event(self, event: dict[str, Any]) -> None:
        with self._lock:
            kind = event.get("event")
            key = (str(event.get("host")), str(event.get("project")))
            if kind == "step":
                self._running[key] = (str(event.get("action")), time.monotonic(), "")
            elif kind == "progress":
                if key in self._running:
                    self._running[key] = self._running[key][:2] + (str(event.get("msg")),)
                self._progress(f"{event.get('project')}: {event.get('msg')}")
            elif kind == "result":
                r = Result.from_dict(event["result"])
                self._seen.append(r)
                self._running.pop((r.host, str(r.project)), None)
                if not self.as_json:
                    self._clear_progress()
                    shown = self._from_here(r)
                    line = result_line(shown, self.task)
                    line = line if self.show_token else redact(line)
                    if self.show_login and r.secret.get("token_url"):
                        line += "\n" + login_line(r, self.via.get(r.host))
                    print(paint(line, r.status, self.out), file=self.out, flush=True)
            elif kind == "warning" and not self.as_json:
                self._clear_progress()
                print(f"warning: {event.get('project')}: {event.get('msg')}", file=self.err)
            elif kind == "log" and not self.as_json:
                self._clear_progress()
                text = event.get("text", "")
                text = text if self.show_token else redact(text)
                if self._log_prefix:
                    prefix = f"{event.get('project')} | "
                    text = "".join(prefix + ln for ln in text.splitlines(keepends=True))
                self.out.write(text)
                self.out.flush()

    def prefix_logs(self, on: bool) -> None:
        self._log_prefix = on

    def _progress(self, text: str) -> None:
        if not self.err.isatty():
            return
        now = time.monotonic()
        if now - self._last_progress < 0.2:
            return
        self._last_progress = now
        width = 100
        self.err.write("\r\033[K" + text[:width])
        self.err.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._progress_shown = False

    def warn(self, message: str) -> None:
        with self._lock:
            self._clear_progress()
            print(f"warning: {message}", file=self.err)

    def interrupted(self) -> None:
        """After Ctrl-C: each step that had begun and not ended, as a failed result, then the
        recap (or the one JSON document) of everything that happened until then."""
        with self._lock:
            now = time.monotonic()
            cut = [Result(host=host, project=project, action=action, status=FAILED,
                          msg=f"interrupted after {now - began:.0f}s" + (f" while {last}" if last else ""))
                   for (host, project), (action, began, last) in self._running.items()]
        for r in cut:
            self.event({"event": "result", "result": r.to_dict()})
        self.actions(list(self._seen))

    # -- open and its tunnels ------------------------------------------------
    # URLs (with their token: the owner asked for them) are the only thing on
    # stdout, one per line, so `jlc open NAME | head -1` is the URL; the lines
    # that say what happened go to stderr.
    def url(self, url: str) -> None:
        with self._lock:
            self._clear_progress()
            _emit(self.urls, url)

    def note(self, host: str, project: str, msg: str) -> None:
        with self._lock:
            self._clear_progress()
            _emit(self.err, f"[{host}] {project}: {msg}")

    def problem(self, host: str, project: str, msg: str) -> None:
        with self._lock:
            self._clear_progress()
            _emit(self.err, paint(f"error: [{host}] {project}: {redact(msg)}", FAILED, self.err))

    def tunnel(self, event: Any) -> None:
        """A TunnelEvent: what happened on stderr, a new URL on stdout."""
        bad = event.kind in ("lost", "gave-up", "stopped")
        with self._lock:
            self._clear_progress()
            line = f"[{event.host}] {event.project}: {event.msg}"
            _emit(self.err, paint(line, FAILED, self.err) if bad else line)
            if event.url:
                _emit(self.urls, event.url)

    def closed(self, tunnels: list[tuple[str, str]], signum: int) -> None:
        """The one line a tunnel run ends with when a signal ended it; ``tunnels`` are (host, project)."""
        import signal

        name = signal.Signals(signum).name
        if len(tunnels) == 1:
            line = f"[{tunnels[0][0]}] {tunnels[0][1]}: tunnel closed ({name})"
        else:
            line = f"{len(tunnels)} tunnels closed ({name}): {', '.join(p for _, p in tunnels)}"
        with self._lock:
            _emit(self.err, line)

    def confirm(self, question: str) -> bool:
        """Ask on the terminal; anything but y/yes is no (and so is end of input)."""
        with self._lock:
            self._clear_progress()
            _emit(self.err, question, end="")
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            return False
        return answer.strip().lower() in ("y", "yes")

    # -- summaries ---------------------------------------------------------
    def actions(self, results: list[Result]) -> None:
        """The recap (results were already printed live) or the actions JSON document."""
        with self._lock:
            self._clear_progress()
        counts = recap(results)
        if self.as_json:
            doc = {"version": 1,
                   "results": [self._public(r) for r in results],
                   "recap": counts}
            self.json(doc)
            return
        self._recap(counts)

    def _recap(self, counts: dict[str, dict[str, int]]) -> None:
        print(file=self.out)
        print("RECAP", file=self.out)
        width = max((len(h) for h in counts), default=5)
        for host, c in counts.items():
            status = FAILED if c[FAILED] or c[UNREACHABLE] else (CHANGED if c[CHANGED] else OK)
            line = (f"{host:<{width}} : ok={c[OK]:<3} changed={c[CHANGED]:<3} failed={c[FAILED]:<3} "
                    f"skipped={c[SKIPPED]:<3} unreachable={c[UNREACHABLE]}")
            print(paint(line, status, self.out), file=self.out)

    def public(self, results: list[Result]) -> list[dict[str, Any]]:
        """The results as the JSON documents carry them: secrets dropped, tokens hidden unless asked for."""
        return [self._public(r) for r in results]

    def audit(self, doc: dict[str, Any], fixing: bool) -> None:
        """The audit: one line per project, then each failure and warning with its fix or advice."""
        with self._lock:
            self._clear_progress()
        if self.as_json:
            self.json(doc)
            return
        if fixing and doc["results"]:
            print(file=self.out)
        print(audit_table(doc["projects"]), file=self.out)
        lines = audit_problems(doc["projects"])
        if lines:
            print(file=self.out)
            for status, text in lines:
                print(paint(text, FAILED if status == "fail" else CHANGED, self.out), file=self.out)
        if fixing and doc["recap"]:
            self._recap(doc["recap"])

    def reach(self, host: str, project: str | None, url: str | None) -> str | None:
        """How to reach a server from this machine (see ``reach``), -H words included where needed."""
        return reach(host, project, url, self.via.get(host))

    def _from_here(self, r: Result) -> Result:
        # `open --start` is already on its way to the server: no hint to run open.
        return seen_from_here(r, self.via.get(r.host), hint=self.task != "open")

    def _public(self, r: Result) -> dict[str, Any]:
        doc = self._from_here(r).to_dict(include_secret=False)
        if self.show_token:
            if r.secret.get("token_url"):
                doc["token_url"] = r.secret["token_url"]
        else:
            doc["msg"] = redact(doc["msg"])
        return doc

    def json_line(self, r: Result) -> None:
        """One result as one line of JSON (a task that streams results for as long as it runs)."""
        print(json.dumps(self._public(r)), file=self.out, flush=True)

    def json(self, doc: dict[str, Any]) -> None:
        print(json.dumps(doc, indent=2, sort_keys=False), file=self.out)

    def status(self, doc: dict[str, Any]) -> None:
        if self.as_json:
            self.json(doc)
            return
        print(status_table(doc["projects"], self.show_token), file=self.out)
        if doc.get("unmanaged"):
            print(file=self.out)
            print("Jupyter servers outside every project (unmanaged):", file=self.out)
            print(unmanaged_table(doc["unmanaged"]), file=self.out)


def _emit(stream: TextIO, text: str, end: str = "\n") -> None:
    # A tunnel's terminal may be gone (SIGHUP, a closed pipe): never die of saying something.
    try:
        stream.write(text + end)
        stream.flush()
    except (OSError, ValueError):
        pass


def uptime(started: str | None, now: float | None = None) -> str:
    if not started:
        return ""
    from datetime import datetime

    secs = int((now or time.time()) - datetime.fromisoformat(started).timestamp())
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def mib(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:.0f} MiB"


def _kernels(row: dict[str, Any]) -> str:
    if row.get("kernels") is None:
        return ""
    busy = row.get("busy_kernels")
    return f"{row['kernels']}" + (f" ({busy} busy)" if busy else "")


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    from tabulate import tabulate  # deferred: JSON-only runs never need it

    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))


def status_table(rows: list[dict[str, Any]], show_token: bool = False) -> str:
    ordered = sorted(rows, key=lambda r: (r["host"] != "local", r["host"], r["name"]))
    body = []
    for r in ordered:
        url = server_cell(r, show_token)
        state = r["state"] + ("*" if r.get("tracked") is False else "")
        restarts = r.get("restarts")
        body.append([r["name"], r["host"], state, r.get("pid") or "", r.get("port") or "", url,
                     uptime(r.get("started")), _kernels(r), mib(r.get("rss_bytes")),
                     "" if restarts is None else restarts, r.get("note") or ""])
    return _table(body, ["PROJECT", "HOST", "STATE", "PID", "PORT", "URL", "UPTIME", "KERNELS", "MEMORY",
                         "RESTARTS", "NOTE"])


def unmanaged_table(rows: list[dict[str, Any]]) -> str:
    body = [[r["host"], r["pid"], r.get("port") or "", server_cell(r), r.get("root_dir") or "",
             uptime(r.get("started")), mib(r.get("rss_bytes"))] for r in rows]
    return _table(body, ["HOST", "PID", "PORT", "URL", "ROOT DIR", "UPTIME", "MEMORY"])


def audit_table(rows: list[dict[str, Any]]) -> str:
    """One line per project: how many rules pass, fail, warn or do not apply, and which ones do not pass."""
    body = []
    for r in rows:
        counts = [str(sum(1 for rule in r["rules"] if rule["status"] == s)) if r["rules"] else ""
                  for s in ("pass", "fail", "warn", "n/a")]
        failed = [rule["id"] for rule in r["rules"] if rule["status"] == "fail"]
        warned = [rule["id"] for rule in r["rules"] if rule["status"] == "warn"]
        problems = ", ".join(failed) + (" (fail)" if failed else "")
        if warned:
            problems += ("; " if failed else "") + ", ".join(warned) + " (warn)"
        if not r["rules"]:
            problems = "(host unreachable)"
        body.append([r["name"], r["host"], *counts, problems])
    return _table(body, ["PROJECT", "HOST", "PASS", "FAIL", "WARN", "N/A", "NOT PASSING"])


def audit_problems(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each failing or warning rule: (status, text with its message and its fix or advice)."""
    out = []
    for r in rows:
        for rule in r["rules"]:
            if rule["status"] not in ("fail", "warn"):
                continue
            text = f"{rule['status']}: [{r['host']}] {r['name']}: {rule['id']}: {rule['msg']}"
            if rule.get("fix"):
                text += f"\n    fix (audit --fix): {rule['fix']}"
            if rule.get("advice"):
                text += f"\n    to do: {rule['advice']}"
            out.append((rule["status"], text))
    return out


def ports_table(rows: list[dict[str, Any]]) -> str:
    body = [[r["host"], r["port"], r["state"], r.get("project") or "", r.get("pid") or "", r.get("process") or "",
             ", ".join(r.get("range") or []) or "(outside every range)"] for r in rows]
    return _table(body, ["HOST", "PORT", "STATE", "PROJECT", "PID", "PROCESS", "RANGE OF"])


# Words of a Jupyter command line worth keeping when it has to be shortened: the port and the root dir.
_TELLING = re.compile(r"^--(?:[\w-]+\.)*(?:port|root_dir|notebook_dir|notebook-dir)(=|$)")


def _middle(word: str, width: int) -> str:
    """``word`` cut in its middle to ``width``, keeping more of its end (a path's last directories)."""
    if len(word) <= width:
        return word
    head = (width - 1) // 4 if width >= 24 else 0  # short: the end alone says more ('…/bin/python')
    return word[:head] + "…" + word[len(word) - (width - 1 - head):]


def _shrink(word: str, width: int) -> str:
    """``word`` made at most ``width`` long if it can be: ``--ServerApp.root_dir=/a/b/c`` becomes
    ``--…root_dir=/a…/b/c`` (option name shortened first, then the value in its middle)."""
    if word.startswith("--") and "=" in word:
        key, value = word.split("=", 1)
        if "." in key and len(word) > width:
            key = "--…" + key.rsplit(".", 1)[1]
        room = width - len(key) - 1
        return f"{key}={_middle(value, max(room, 8))}"
    return _middle(word, max(width, 12))


def fit_command(command: str, width: int) -> str:
    """A command line shortened to ``width`` so that what identifies a server stays visible.

    Kept: the program, the script or ``-m module``, the port and the root dir (and a kernel's ``-f``
    connection file); the rest is elided (``…``). Then the program's path, the script's and the
    longest words lose their middles, so a root dir keeps its last directories.
    """
    if len(command) <= width:
        return command
    words = command.split(" ")
    keep = {0}
    script = len(words) > 1 and not words[1].startswith("-")
    if script:
        keep.add(1)  # python /path/to/jupyter-lab ...
    for i, word in enumerate(words):
        telling = _TELLING.match(word)
        if word in ("-m", "-f") or (telling and not telling.group(1)):
            keep.update({i, i + 1})  # the flag and its separate value
        elif telling:
            keep.add(i)
    parts: list[str] = []
    last = -1
    for i in sorted(k for k in keep if k < len(words)):
        if i != last + 1:
            parts.append("…")
        parts.append(words[i])
        last = i
    if last != len(words) - 1:
        parts.append("…")
    # The interpreter's and the script's directories say least; then the longest words give way.
    order = [0] + ([1] if script else []) + sorted(range(2 if script else 1, len(parts)), key=lambda i: -len(parts[i]))
    for i in order:
        excess = len(" ".join(parts)) - width
        if excess <= 0:
            break
        parts[i] = _shrink(parts[i], len(parts[i]) - excess)
    return _middle(" ".join(parts), width)


def orphans_table(rows: list[dict[str, Any]], width: int | None = None) -> str:
    """The orphans as a table; ``width`` bounds the command column (None: as long as it is)."""
    body = []
    for r in rows:
        command = redact(r.get("cmdline") or "")
        command = fit_command(command, width) if width else command
        owner = "" if r.get("mine", True) else " (other user)"
        body.append([r["host"], r["kind"] + owner, r["pid"], r.get("project") or "(none)", uptime(r.get("started")),
                     mib(r.get("rss_bytes")), command])
    return _table(body, ["HOST", "KIND", "PID", "PROJECT", "UPTIME", "MEMORY", "COMMAND"])


def config_toml(doc: dict[str, Any], tokens_shown: bool) -> str:
    """The config document as TOML: a valid inventory (tomlkit writes the quoting), null keys left out."""
    import tomlkit  # deferred: only config needs it

    def table(values: dict[str, Any]) -> Any:
        out = tomlkit.table()
        for key, value in values.items():
            if value is None:
                continue  # TOML has no null: an unset key is simply absent
            if isinstance(value, dict):
                inline = tomlkit.inline_table()
                inline.update(value)
                value = inline
            out.add(key, value)
        return out

    text = tomlkit.document()
    text.add(tomlkit.comment(f"jupyter-lifecycle config: {doc['source']} with every default applied"))
    if not tokens_shown:
        text.add(tomlkit.comment("tokens and passwords in env and args show as <hidden> (--show-token shows them)"))
    text.add(tomlkit.nl())
    text.add("defaults", table(doc["defaults"]))
    for section in ("hosts", "projects"):
        if doc[section]:
            group = tomlkit.table(is_super_table=True)
            for name, entry in doc[section].items():
                group.add(name, table(entry))
            text.add(section, group)
    text.add("discover", table(doc["discover"]))
    return str(tomlkit.dumps(text))


def which_found(doc: dict[str, Any]) -> str:
    """One sentence for what ``which`` found, including that nothing holds the target."""
    project = doc.get("project")
    owner = f"project {project}" if project else "no project"
    server = doc.get("url") is not None or doc.get("tracked") is not None
    untracked = " (no pid file tracks it)" if doc.get("tracked") is False and project else ""
    ranges = doc.get("range") or []
    in_range = f"in the range of {', '.join(ranges)}" if ranges else "outside every project's range"
    if doc.get("kind") == "port":
        if doc.get("pid") is None:
            return f"free, {in_range}"
        if server:
            return f"the Jupyter server of {owner}{untracked}"
        return f"used by {doc.get('process') or 'a process'} (pid {doc['pid']}), not a Jupyter server; {in_range}"
    if doc.get("kind") == "pid":
        role = doc.get("role")
        if role == "server":
            return f"the Jupyter server of {owner}{untracked}"
        if doc.get("orphan"):
            return f"an orphan kernel (its server is gone) of {owner}"
        if server:
            what = "a kernel" if role == "kernel" else f"{doc.get('process') or 'a process'}"
            return f"{what} under the Jupyter server of {owner}"
        return f"{'a kernel' if role == 'kernel' else doc.get('process') or 'a process'}, not under any Jupyter server"
    if project is None:
        return "no project" + ("; inside the root of the Jupyter server below" if server else
                               ", and no Jupyter server's root holds it")
    return f"in {owner}" + ("; its server:" if server else f"; {project} is not running")


def which_text(doc: dict[str, Any]) -> str:
    keys = ["target", "kind", "host", "project", "role", "process", "pid", "port", "url", "token_url", "reach",
            "started", "tracked", "orphan", "range"]
    remote = doc.get("host") not in (None, LOCAL_HOST)
    lines = [f"{'found:':<11} {which_found(doc)}"]
    for key in keys:
        if key in doc and doc[key] not in (None, [], ""):
            value = ", ".join(doc[key]) if isinstance(doc[key], list) else doc[key]
            if key == "started":
                value = f"{value} (up {uptime(doc[key])})"
            if key in ("url", "token_url") and remote:
                value = f"{value} (on {doc['host']})"  # not this machine's 127.0.0.1
            if key == "reach" and value == doc.get("url"):
                continue  # a local server: its URL is how
            lines.append(f"{key + ':':<11} {value}")
    return "\n".join(lines)


def service_text(doc: dict[str, Any]) -> str:
    """``jlc service status`` for people."""
    def yes(value: Any) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    running = "" if doc.get("running") else " (not running on this host)"
    lines = [f"host:      {doc.get('host')}", f"manager:   {doc.get('manager')}{running}"]
    if doc.get("unit"):
        state = ("not installed" if not doc.get("installed") else
                 "installed, up to date" if doc.get("current") else
                 "installed, differs from what install would write" if doc.get("ours") else
                 "present, not written by jupyter-lifecycle")
        lines.append(f"unit:      {doc['unit']} ({state})")
        lines.append(f"enabled:   {yes(doc.get('enabled'))}")
        lines.append(f"active:    {yes(doc.get('active'))}")
    if doc.get("manager") == "systemd":
        lines.append(f"linger:    {yes(doc.get('linger'))}")
    lines.append(f"command:   {doc.get('command') or '(jupyter-lifecycle not found on this host)'} supervise")
    lines.append(f"inventory: {doc.get('inventory')}")
    return "\n".join(lines)


def live_frame(doc: dict[str, Any], cpu: dict[tuple[str, str], float | None], interval: float, width: int,
               show_token: bool = False) -> str:
    """One frame of ``status --watch``: a title line, then the table, every line cut to ``width``."""
    rows = sorted(doc["projects"], key=lambda r: (r["host"] != "local", r["host"], r["name"]))
    running = sum(1 for r in rows if r["state"] == "running")
    projects = f"{len(rows)} project{'s' if len(rows) != 1 else ''}"
    title = (f"jlc status --watch {interval:g}s   {time.strftime('%H:%M:%S')}   {projects}, {running} running"
             "   (Ctrl-C quits)")
    body = []
    for r in rows:
        pct = cpu.get((r["host"], r["name"]))
        url = server_cell(r, show_token)
        restarts = r.get("restarts")
        body.append([r["name"], r["host"], r["state"] + ("*" if r.get("tracked") is False else ""),
                     r.get("pid") or "", "" if pct is None else f"{pct:.1f}", mib(r.get("rss_bytes")), _kernels(r),
                     "" if restarts is None else restarts, uptime(r.get("started")), url, r.get("note") or ""])
    table = _table(body, ["PROJECT", "HOST", "STATE", "PID", "CPU%", "MEMORY", "KERNELS", "RESTARTS", "UPTIME",
                          "URL", "NOTE"])
    lines = [title, ""] + table.splitlines()
    if doc.get("unmanaged"):
        lines += ["", f"+ {len(doc['unmanaged'])} Jupyter server(s) outside every project (jlc status lists them)"]
    return "\n".join(line if len(line) <= width else line[: max(1, width - 1)] + "…" for line in lines)


class LiveScreen:
    """Where ``status --watch`` draws: in place on a terminal (the alternate screen, no flicker: each
    line overwritten then cleared to its end), one frame after another anywhere else."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def width(self) -> int:
        if not self.tty:
            return 10_000
        # The terminal's own size, asked each frame: $COLUMNS (which shutil prefers) is a snapshot
        # that goes stale when the window is resized, and is often inherited from elsewhere.
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 200
        except (OSError, ValueError):
            import shutil

            return shutil.get_terminal_size((200, 50)).columns

    def __enter__(self) -> LiveScreen:
        if self.tty:
            self.out.write("\033[?1049h\033[?25l")  # alternate screen, cursor hidden
            self.out.flush()
        return self

    def draw(self, frame: str) -> None:
        self.last = frame
        if self.tty:
            self.out.write("\033[H" + "".join(line + "\033[K\n" for line in frame.splitlines()) + "\033[J")
        else:
            self.out.write(frame + "\n\n")
        self.out.flush()

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            # Back to the normal screen, leaving the last frame there to read.
            self.out.write("\033[?25h\033[?1049l" + (self.last + "\n" if self.last else ""))
            self.out.flush()


def tunnels_table(rows: list[dict[str, Any]]) -> str:
    body = [[r["project"], r["host"], f"127.0.0.1:{r['local_port']}", f"{r['host']}:{r['remote_port']}",
             r["pid"], "detached" if r.get("detached") else "foreground", uptime(r.get("started")), r["state"],
             r.get("note") or ""] for r in rows]
    return _table(body, ["PROJECT", "HOST", "LOCAL", "REMOTE", "PID", "MODE", "UPTIME", "STATE", "NOTE"])
