"""The program a remote host runs for every task (sent as ``python -c``; Python 3.9+, stdlib only).

stdin carries one header line (JSON), then the host layer as a zip, then the
request.  The host layer is unpacked once into ~/.cache/jupyter-lifecycle,
keyed by its content hash, and reused while the hash matches.  psutil comes
from a provisioned directory keyed by its version and this interpreter's ABI,
or from the interpreter itself; when neither has it the script answers
{"need": "psutil", ...} with exit status 3 and the controller provisions it
(the answer says what the interpreter is: pip present, PEP 668 marker, so
that a failed provisioning can say what to install).

Header fields: layer (hash), layer_len, request_len, psutil (version wanted),
watch (stream until the controller hangs up), alive (seconds between heartbeat events, so
the controller can tell a working host from a frozen one), op (for messages), provision ("psutil": the
payload is a zip of psutil to install instead of a request).
"""

from __future__ import annotations

BOOT = r'''
import io, json, os, platform, shutil, sys, sysconfig, tempfile, threading, zipfile
if sys.version_info < (3, 9):
    sys.stdout.write(json.dumps({"version": 1, "need": "python", "error": "Python 3.9+ is needed on this host, "
                                 "found %s at %s" % (platform.python_version(), sys.executable)}) + "\n")
    sys.exit(2)
head = json.loads(sys.stdin.buffer.readline())
cache = os.path.join(os.path.expanduser("~"), ".cache", "jupyter-lifecycle")
tag = "%s-%s-%s" % (sys.implementation.cache_tag, sysconfig.get_platform(), "".join(platform.libc_ver()))
def unpack(data, dest):
    if os.path.isdir(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(dest))
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another run unpacked it first
deps = os.path.join(cache, "deps", "psutil-%s-%s" % (head["psutil"], tag))
if head.get("provision") == "psutil":
    unpack(sys.stdin.buffer.read(head["layer_len"]), deps)
    sys.stdout.write(json.dumps({"version": 1, "provisioned": deps}) + "\n")
    sys.exit(0)
layer = os.path.join(cache, "layer-" + head["layer"])
unpack(sys.stdin.buffer.read(head["layer_len"]), layer)
request = sys.stdin.buffer.read(head["request_len"])
sys.path[:0] = [layer] + ([deps] if os.path.isdir(deps) else [])
try:
    import psutil
    if tuple(int(x) for x in psutil.__version__.split(".")[:2]) < (5, 6):
        raise ImportError("psutil %s is too old" % psutil.__version__)
except ImportError as exc:
    import importlib.util
    sys.stdout.write(json.dumps({"version": 1, "need": "psutil", "tag": tag, "deps": deps, "why": str(exc),
                                 "pip": importlib.util.find_spec("pip") is not None,
                                 "python": sys.executable,
                                 # PEP 668 (Debian 12+, Ubuntu 23.04+): pip refuses to install here; venvs are exempt.
                                 "externally_managed": sys.prefix == sys.base_prefix and os.path.exists(
                                     os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))}) + "\n")
    sys.exit(3)
if head.get("watch"):
    # Streaming (logs -f): stop when the controller hangs up.
    def _watch():
        sys.stdin.buffer.read()
        os._exit(0)
    threading.Thread(target=_watch, daemon=True).start()
from lifecycle.host.__main__ import serve
sys.exit(serve(request, alive=head.get("alive")))
'''
