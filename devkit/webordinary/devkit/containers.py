"""How the local kubelet runs one container of a pod: argv, uid, groups, env and folders.

Each container is its own process. Where the kubelet runs as root (CI, this machine), every
process gets that container's uid and gid (`setpriv`, all capabilities dropped, no_new_privs),
shifted by a per-pod offset as a user namespace would, so two pods never share a uid. A volume
is a local folder whose group only the containers mounting it hold (mode 2770): a container
reaches exactly the volumes its spec mounts, like a mount namespace gives it. Ports are the
pod's own (a free local port per containerPort, rewritten in the env), since all local pods
share one loopback. Interpreter folders under a directory other uids cannot enter (pyenv under
/root) are re-exposed in a private mount namespace with a tmpfs over that directory, which also
hides the rest of it.

Without root the processes run as the kubelet's own uid and the isolation is not real.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from webordinary.devkit.supervisor import LAUNCHER

SKIP_AWS_INJECTION: Final = "eks.amazonaws.com/skip-containers"
REPO_ROOT: Final = Path(__file__).resolve().parents[3]
UID_STRIDE: Final = 100_000  # container uids must be below this
PVC_GIDS: Final = 3_000_000
EMPTYDIR_GIDS: Final = 4_000_000
IMAGE_ENV: Final = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/"}


@dataclass
class Launch:
    """One container process as the kubelet starts it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    readiness: tuple[str, int] | None = None  # (path, local port)
    uid: int | None = None
    groups: list[int] = field(default_factory=list)


@dataclass
class PodPlan:
    """Everything needed to run a pod: init containers, containers, its port map."""

    init: list[Launch]
    containers: list[Launch]
    ports: dict[int, int]
    named_ports: dict[str, int]
    problems: list[str]
    # subPath folders: created (as root, like a kubelet) after the init containers if missing.
    subpaths: list[Path] = field(default_factory=list)


def isolating() -> bool:
    """Real per-container uids need root (the kubelet's own)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _stable(text: str, modulo: int) -> int:
    return zlib.crc32(text.encode()) % modulo


def uid_offset(pod_key: str) -> int:
    """A per-pod uid shift (what a user namespace gives each pod): stable across restarts."""
    return UID_STRIDE * (10 + _stable(pod_key, 20_000))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_map(pod_spec: Mapping[str, Any]) -> tuple[dict[int, int], dict[str, int]]:
    """A free local port for every containerPort of the pod (by number and by name)."""
    ports: dict[int, int] = {}
    named: dict[str, int] = {}
    for container in pod_spec.get("containers", []):
        for port in container.get("ports", []):
            number = int(port["containerPort"])
            ports.setdefault(number, free_port())
            if "name" in port:
                named[port["name"]] = ports[number]
    return ports, named


def rewrite(value: str, mounts: Mapping[str, Path], ports: Mapping[int, int]) -> str:
    """A container env value as seen locally: mount paths and pod ports mapped."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            value = str(mounts[mount_path]) + value[len(mount_path.rstrip("/")):]
            break
    for port, local in ports.items():
        if value == str(port):
            return str(local)
        for host in ("127.0.0.1", "localhost"):
            value = value.replace(f"{host}:{port}", f"{host}:{local}")
    return value


def resolve_env(container: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]
                ) -> tuple[dict[str, str], list[str]]:
    """The container's env with secretKeyRefs resolved; a missing secret is a problem."""
    env: dict[str, str] = {}
    problems: list[str] = []
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        value = secrets.get((ref["name"], ref["key"]))
        if value is None:
            if not ref.get("optional", False):
                problems.append(f"secret {ref['name']}/{ref['key']} not found for {name}")
            continue
        env[name] = value
    return env, problems


def volume_gid(kind: str, key: str) -> int:
    base = PVC_GIDS if kind == "pvc" else EMPTYDIR_GIDS
    return base + _stable(key, 1_000_000)


def prepare_volume(path: Path, gid: int | None) -> Path:
    """The local folder of a volume: group `gid` only (setgid, 2770) when isolating."""
    path.mkdir(parents=True, exist_ok=True)
    if gid is not None:
        os.chown(path, 0, gid)
        path.chmod(0o2770)
    return path


def hidden_ancestor(path: Path) -> Path | None:
    """The topmost ancestor of `path` that other uids cannot enter, if any."""
    found = None
    for parent in reversed(path.parents):
        if parent == Path("/"):
            continue
        if not parent.stat().st_mode & stat.S_IXOTH:
            found = parent
            break
    return found


def exposure_script(paths: list[Path], stash: Path) -> list[str]:
    """Shell lines re-exposing `paths` under non-enterable directories (tmpfs over those)."""
    wanted: dict[Path, list[Path]] = {}
    for path in paths:
        hidden = hidden_ancestor(path)
        if hidden is not None and not any(path.is_relative_to(p) for p in wanted.get(hidden, [])):
            wanted.setdefault(hidden, []).append(path)
    lines: list[str] = []
    index = 0
    moves: list[tuple[Path, Path]] = []
    for hidden, inside in wanted.items():
        for path in inside:
            slot = stash / str(index)
            index += 1
            lines.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(slot))}")
            moves.append((slot, path))
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(hidden))}")
    for slot, path in moves:
        lines.append(f"mkdir -p {shlex.quote(str(path))}")
        lines.append(f"mount --move {shlex.quote(str(slot))} {shlex.quote(str(path))}")
    return lines


_STASH: list[Path] = []


def stash_dir() -> Path:
    """Mount points for the re-exposed folders, outside every folder a tmpfs covers."""
    if not _STASH:
        _STASH.append(Path(tempfile.mkdtemp(prefix="webordinary-kubelet-")))
    return _STASH[0]


def wrap(argv: list[str], *, uid: int, gid: int, groups: list[int],
         expose: tuple[Path, ...] = ()) -> list[str]:
    """argv run as uid/gid with only `groups`, no capabilities, no_new_privs; the interpreter,
    the project and `expose` (the kubelet's state folder) reachable."""
    paths = sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO_ROOT,
                    *(p.resolve() for p in expose)})
    stash = stash_dir()
    lines = exposure_script(paths, stash)
    if lines:
        for index in range(len(paths)):
            (stash / str(index)).mkdir(parents=True, exist_ok=True)
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
               f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups",
               "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *argv]
    if not lines:
        return setpriv
    script = "set -e\n" + "\n".join(lines) + "\nexec " + shlex.join(setpriv)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def command_of(container: Mapping[str, Any]) -> list[str]:
    """The container's command; `python` is this interpreter (the image's python), started
    through the launcher that ends it with the kubelet (no orphans, as with a pod's cgroup)."""
    argv = list(container.get("command") or ["python", "-m", "webordinary.editor"])
    argv += list(container.get("args") or [])
    if argv[0] == "python":
        argv = [sys.executable, "-c", LAUNCHER, str(os.getpid()), *argv[1:]]
    return argv


def _readiness(container: Mapping[str, Any], ports: Mapping[int, int],
               named: Mapping[str, int]) -> tuple[str, int] | None:
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    if not probe:
        return None
    port = probe["port"]
    local = named.get(port) if isinstance(port, str) else ports.get(int(port))
    return (probe.get("path", "/"), local) if local else None


def plan_pod(
    deployment: Mapping[str, Any],
    secrets: Mapping[tuple[str, str], str],
    root: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    aws_env: Mapping[str, str] | None = None,
    first_command: list[str] | None = None,
    commands: Mapping[str, list[str]] | None = None,
) -> PodPlan:
    """Launches for a Deployment's pod: volumes prepared, env resolved and rewritten."""
    meta = deployment["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    pod_key = f"{namespace}/{name}"
    template = deployment["spec"]["template"]
    spec = template["spec"]
    isolate = isolating()
    offset = uid_offset(pod_key)
    pod_ctx = spec.get("securityContext") or {}
    skipped = set(filter(None, (template.get("metadata", {}).get("annotations") or {})
                         .get(SKIP_AWS_INJECTION, "").split(",")))
    ports, named = port_map(spec)
    if isolate:
        # Other uids may pass through the kubelet's folders (never list them): each volume
        # below is guarded by its own group.
        for folder in (root, root / "volumes", root / "volumes" / namespace, root / "pods",
                       root / "pods" / namespace):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod((folder.stat().st_mode & 0o7777) | 0o111)
    pod_dir = root / "pods" / namespace / name
    shutil.rmtree(pod_dir, ignore_errors=True)  # emptyDirs start empty
    volumes: dict[str, tuple[Path, int | None]] = {}
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            gid = volume_gid("pvc", f"{namespace}/{claim}") if isolate else None
            path = prepare_volume(root / "volumes" / namespace / claim, gid)
        elif "emptyDir" in volume:
            gid = volume_gid("emptydir", f"{pod_key}/{volume['name']}") if isolate else None
            path = prepare_volume(pod_dir / "volumes" / volume["name"], gid)
        else:
            continue
        volumes[volume["name"]] = (path, gid)
    problems: list[str] = []
    subpaths: list[Path] = []

    def launch(container: Mapping[str, Any]) -> Launch:
        mounts: dict[str, Path] = {}
        groups: list[int] = []
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                continue
            path, gid = volumes[mount["name"]]
            if mount.get("subPath"):
                path = path / mount["subPath"]
                subpaths.append(path)
            mounts[mount["mountPath"]] = path
            if gid is not None and gid not in groups:
                groups.append(gid)
        env, missing = resolve_env(container, secrets)
        problems.extend(f"{container['name']}: {p}" for p in missing)
        base = dict(IMAGE_ENV, PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
        if container["name"] not in skipped:
            base.update(aws_env or {})
        env = {k: rewrite(v, mounts, ports) for k, v in {**base, **env}.items()}
        env.update(extra_env or {})
        argv = command_of(container)
        if first_command is not None and container is spec["containers"][0]:
            argv = list(first_command)
        elif commands and container["name"] in commands:
            argv = list(commands[container["name"]])
        ctx = {**pod_ctx, **(container.get("securityContext") or {})}
        uid = None
        if isolate:
            uid = offset + int(ctx.get("runAsUser", 65534)) % UID_STRIDE
            gid = offset + int(ctx.get("runAsGroup", ctx.get("runAsUser", 65534))) % UID_STRIDE
            argv = wrap(argv, uid=uid, gid=gid, groups=groups, expose=(root,))
        return Launch(container["name"], argv, env, _readiness(container, ports, named),
                      uid, groups)

    if first_command is not None:  # a stand-in for the whole pod
        return PodPlan([], [launch(spec["containers"][0])], ports, named, problems, [])
    init = [launch(c) for c in spec.get("initContainers", [])]
    containers = [launch(c) for c in spec.get("containers", [])]
    return PodPlan(init, containers, ports, named, problems, subpaths)


def kill_uids(uids: list[int]) -> int:
    """SIGKILL every process running as one of `uids` (a stopped container's leftovers)."""
    if not uids or not isolating():
        return 0
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            owner = entry.stat().st_uid
        except OSError:
            continue
        if owner in uids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed
