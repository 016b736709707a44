"""Process sandbox for candidate programs (split out of :mod:`workbench.tasks.code_tasks`, which re-exports it).

Every candidate run is a fresh ``python -I`` (isolated mode: no environment variables read, no user site,
script directory not on ``sys.path``) subprocess in its own temporary directory (its cwd, ``HOME`` and
``TMPDIR``; the code sits one level up, where the program cannot write), started with
``start_new_session`` and ``resource`` limits set in ``preexec_fn``: ``RLIMIT_CPU`` (CPU seconds),
``RLIMIT_AS`` (address space, per process), ``RLIMIT_FSIZE`` (largest file it may write: stdout and stderr
go to files, so this is also the output cap), ``RLIMIT_CORE`` = 0 and ``RLIMIT_NPROC``. stdin, stdout and
stderr are unnamed temporary files (``O_TMPFILE``: no path another program could open) read by the parent
through its own descriptors. The environment is minimal (``PATH``, ``LANG``, ``HOME``, ``TMPDIR``,
one-thread BLAS variables): no inherited tokens, keys or proxy variables. Programs run concurrently in a
bounded pool (``SandboxLimits.max_workers``) managed by one thread that polls the children.

Identity (``SandboxLimits.run_as="auto"``, the default). As root, every run gets its **own uid and gid**
from a pool (``uid_base`` .. ``uid_base + uid_count - 1``, default 61000..61999; a uid or gid that exists in
the user or group database is never used). A slot is held with an ``flock`` on a file in a root-only
directory (``/run/wb_sandbox``), so concurrent pools, in this process or others, never share a uid. Its
working directory is owned by that uid with mode 0700 and its code file is readable by that uid alone.
So a program cannot signal (``kill(-1, 9)``), ptrace, or read the files and ``/proc/<pid>/fd`` of any other
run, and ``RLIMIT_NPROC`` (per uid, ignored by the kernel for root) bounds this one run. After every run
a reaper running as that uid does ``kill(-1, SIGKILL)`` (it may signal only that uid's processes), repeated
until ``/proc`` shows no live process whose real, effective or saved uid is it, and only then is the slot
released; the same reaping runs before a slot is used (leftovers of a crashed holder). A process that
``setsid``'s or double-forks away is killed all the same. If a uid cannot be cleared within
``reap_timeout_s`` it is kept out of the pool for the rest of the call and a warning says so.
``run_as=None`` (or not root) runs as ourselves, ``run_as=<name or uid>`` as that one fixed user shared by
all runs: then a run can signal and read concurrent runs of the same user, and only its process group
(and its cgroup, below) is killed afterwards. The identity used is in ``RunResult.isolation["identity"]``.
Reconstruction: user/PID namespaces (``unshare --user --pid``, available here as root and as a normal
user) would give the same separation to a non-root caller; they are not used yet (the candidate would be
PID 1 of its namespace, where signals without a handler, such as ``SIGXCPU``, are ignored).

Memory and processes for the whole run. Where a writable cgroup with the memory and pids controllers
exists (cgroup v2 with both enabled for our cgroup's children, else the v1 ``memory`` and ``pids``
hierarchies; ``SandboxLimits.cgroup="auto"``), each run gets a child cgroup of ours with the memory limit
``memory_mb`` (v2 ``memory.max`` and ``memory.swap.max`` = 0; v1 ``memory.limit_in_bytes`` and
``memory.memsw.limit_in_bytes``) and ``pids.max`` = ``nproc``; the child moves itself in before ``exec``,
and its descendants cannot leave it. The kernel's OOM killer acts inside it (status ``"memory"``).
Afterwards every process in it is killed and it is removed. Without one (``cgroup="off"``, no cgroup
support, or no rights) the bounds are per process: ``RLIMIT_AS`` per process (so ``k`` processes may hold
``k * memory_mb``) and ``RLIMIT_NPROC`` per uid (with the uid pool: at most ``nproc * memory_mb`` for one
run); ``cgroup="require"`` raises instead. ``RunResult.isolation["memory"]`` and ``["pids"]`` say which.

What this does NOT protect against (resource hygiene plus uid separation, **not a security boundary**
like a container): network access (sockets are allowed), reading any world-readable file, writing to
world-writable places such as ``/tmp`` (up to ``RLIMIT_FSIZE`` per file), kernel exploits and side
channels. For untrusted code at full scale run the harness in a container or jail with no network and a
read-only root (e.g. Docker/gVisor with ``--network none``, nsjail or firejail, or a disposable VM), as
LiveCodeBench's own harness recommends.
"""
from __future__ import annotations

import fcntl
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

STATUSES = ("ok", "error", "timeout", "cpu_limit", "memory", "output_limit", "killed")
LOCK_DIR = "/run/wb_sandbox"


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed program run."""

    timeout_s: float = 4.0
    """wall-clock seconds per run; then every process of the run is SIGKILLed"""
    cpu_s: int = 2
    """RLIMIT_CPU seconds (soft; the hard limit is one more); SIGXCPU ends the run"""
    memory_mb: int = 512
    """memory of the whole run (cgroup memory limit) where a cgroup is available; RLIMIT_AS per process always"""
    output_bytes: int = 1_000_000
    """RLIMIT_FSIZE: largest file the program may write; stdout and stderr are files, so also the output cap"""
    nproc: int = 32
    """processes (and threads) of one run: cgroup pids.max, and RLIMIT_NPROC of its uid (see module docstring)"""
    max_workers: int = 2
    """programs run at the same time"""
    run_as: str | int | None = "auto"
    """'auto' = a uid of its own per run from the pool when we are root (else ourselves), a fixed user name
    or uid (shared by all runs), or None (ourselves)"""
    python: str | None = None
    """interpreter; None = this one, or when it cannot be run by the run-as user, /usr/bin/python3"""
    cgroup: str = "auto"
    """'auto' = a cgroup per run when available, 'off' = never, 'require' = raise when unavailable"""
    uid_base: int = 61000
    """first uid (and gid) of the per-run pool"""
    uid_count: int = 1000
    """size of the uid pool"""
    reap_timeout_s: float = 3.0
    """how long the reaper may try to clear a uid after a run"""

    def __post_init__(self):
        for name in ("timeout_s", "cpu_s", "memory_mb", "output_bytes", "max_workers", "uid_count", "reap_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")
        if self.nproc < 1:
            raise ValueError(f"SandboxLimits.nproc must be >= 1, got {self.nproc!r}")
        if self.cgroup not in ("auto", "off", "require"):
            raise ValueError(f"SandboxLimits.cgroup must be 'auto', 'off' or 'require', got {self.cgroup!r}")
        if self.uid_base < 1000 or self.uid_base + self.uid_count >= 2 ** 31:
            raise ValueError(f"SandboxLimits.uid_base must be >= 1000 (no system uids), got {self.uid_base!r}")


@dataclass
class RunResult:
    """What one sandboxed run did. ``status`` is one of :data:`STATUSES`; ``isolation`` says how the run was
    separated and bounded (keys ``identity``, ``uid``, ``memory``, ``pids``; see the module docstring)."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    isolation: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ------------------------------------------------------------------------------------- identity
def _resolve_user(run_as) -> tuple[int, int] | str | None:
    """``"pool"`` (a uid per run), a fixed ``(uid, gid)``, or None to stay as we are."""
    if run_as is None:
        return None
    if run_as == "auto":
        return "pool" if os.geteuid() == 0 else None
    import pwd

    try:
        pw = pwd.getpwuid(run_as) if isinstance(run_as, int) else pwd.getpwnam(run_as)
    except KeyError:
        raise ValueError(f"SandboxLimits.run_as: no such user {run_as!r}") from None
    if pw.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise ValueError(f"SandboxLimits.run_as={run_as!r} needs root to switch user; use run_as=None")
    return pw.pw_uid, pw.pw_gid


def _id_unused(uid: int) -> bool:
    import grp
    import pwd

    try:
        pwd.getpwuid(uid)
        return False
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return False
    except KeyError:
        return True


def _lock_dir() -> str:
    """A directory only root can write, for the pool's lock files (a program must not be able to delete them)."""
    d = LOCK_DIR
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not (os.path.isdir(d) and not os.path.islink(d) and st.st_uid == 0 and st.st_mode & 0o022 == 0):
        raise RuntimeError(f"{d} exists but is not a root-owned directory writable by root alone; remove it, "
                           "or use SandboxLimits(run_as=None)")
    return d


def _live_pids_of(uid: int) -> list[int]:
    """Processes (not zombies) whose real, effective or saved uid is ``uid`` (read from /proc/<pid>/status,
    which, unlike the owner of /proc/<pid>, a non-dumpable process cannot hide)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status", "rb") as f:
                text = f.read(2048)
        except OSError:
            continue
        state = uids = None
        for line in text.split(b"\n"):
            if line.startswith(b"State:"):
                state = line.split()[1:2]
            elif line.startswith(b"Uid:"):
                uids = [int(x) for x in line.split()[1:4]]
                break
        if uids and uid in uids and state != [b"Z"]:
            found.append(int(d))
    return found


_SETPRIV = shutil.which("setpriv")


def _kill_all_of(uid: int, gid: int) -> None:
    """``kill(-1, SIGKILL)`` as ``uid``: every process that uid may signal, which is exactly its own."""
    if _SETPRIV:  # exec'd without a Python-level fork of this (possibly large, threaded) process
        cmd, kw = [_SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "/bin/sh", "-c", "kill -9 -1"], {}
    else:
        cmd, kw = ["/bin/sh", "-c", "kill -9 -1"], {"user": uid, "group": gid, "extra_groups": []}
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={"PATH": "/usr/bin:/bin"}, close_fds=True, check=False, **kw)


def _reap(uid: int, gid: int, timeout_s: float) -> bool:
    """Kill everything ``uid`` owns until none is left; False if some survive ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        if not _live_pids_of(uid):
            return True
        _kill_all_of(uid, gid)
        if time.monotonic() > end:
            return not _live_pids_of(uid)
        time.sleep(0.01)


class _UidPool:
    """Distinct unused uids, one per running program, held by ``flock`` across processes."""

    def __init__(self, limits: SandboxLimits):
        self.limits = limits
        self.dir = _lock_dir()
        self.quarantined: set[int] = set()

    def acquire(self) -> tuple[int, int]:
        lim = self.limits
        start = random.randrange(lim.uid_count)
        for attempt in range(400):
            for k in range(lim.uid_count):
                uid = lim.uid_base + (start + k) % lim.uid_count
                if uid in self.quarantined or not _id_unused(uid):
                    continue
                fd = os.open(os.path.join(self.dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                if _reap(uid, uid, lim.reap_timeout_s):  # leftovers of a holder that died
                    return uid, fd
                self.quarantined.add(uid)
                os.close(fd)
            time.sleep(0.05)
        raise RuntimeError(f"no free uid in the sandbox pool {lim.uid_base}..{lim.uid_base + lim.uid_count - 1}; "
                           "raise SandboxLimits.uid_count or lower max_workers")

    def release(self, uid: int, fd: int, cleared: bool = False) -> None:
        """Free a slot once none of its processes is left (``cleared``: its run's cgroup, which the uid's
        processes cannot leave, was emptied and removed, so the /proc scan is skipped)."""
        if not cleared and not _reap(uid, uid, self.limits.reap_timeout_s):
            self.quarantined.add(uid)
            warnings.warn(f"sandbox uid {uid} still has live processes after {self.limits.reap_timeout_s} s of "
                          f"SIGKILL; it is not reused in this call")
        os.close(fd)  # releases the flock


# -------------------------------------------------------------------------------------- cgroups
def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of the cgroup mounts in /proc/self/mountinfo."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rf = left.split(), right.split()
                if len(rf) >= 3 and rf[0] in ("cgroup", "cgroup2"):
                    out.append((fields[4].replace("\\040", " "), rf[0], set(rf[2].split(","))))
    except OSError:
        pass
    return out


def _own_cgroups() -> dict[str, str]:
    """Controller (or '' for v2) -> our cgroup path, from /proc/self/cgroup."""
    out = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                for c in ctrls.split(",") if ctrls else [""]:
                    out[c] = path
    except OSError:
        pass
    return out


_CGROUP_CACHE: dict[str, object] = {}


def _cgroup_parents() -> tuple[str, list[str]] | None:
    """("v2", [parent]) or ("v1", [memory parent, pids parent]) where per-run children can be made, or None.
    Checked once per process by making and removing a probe child."""
    if "parents" in _CGROUP_CACHE:
        return _CGROUP_CACHE["parents"]  # type: ignore[return-value]
    own, found = _own_cgroups(), None
    mounts = _mounts()
    for mnt, kind, _ in mounts:
        if kind == "cgroup2" and "" in own:
            parent = os.path.join(mnt, own[""].lstrip("/"))
            try:
                ctrls = set(open(os.path.join(parent, "cgroup.controllers")).read().split())
                if {"memory", "pids"} <= ctrls:
                    sub = set(open(os.path.join(parent, "cgroup.subtree_control")).read().split())
                    if not {"memory", "pids"} <= sub:
                        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                            f.write("+memory +pids")
                    if _probe_child(parent):
                        found = ("v2", [parent])
                        break
            except OSError:
                continue
    if found is None:
        dirs = {}
        for mnt, kind, opts in mounts:
            for c in ("memory", "pids"):
                if kind == "cgroup" and c in opts and c in own:
                    dirs[c] = os.path.join(mnt, own[c].lstrip("/"))
        if len(dirs) == 2 and all(_probe_child(d) for d in dirs.values()):
            found = ("v1", [dirs["memory"], dirs["pids"]])
    _CGROUP_CACHE["parents"] = found
    return found


def _probe_child(parent: str) -> bool:
    d = os.path.join(parent, f"wb_sandbox_probe_{os.getpid()}")
    try:
        os.mkdir(d)
        os.rmdir(d)
        return True
    except OSError:
        return False


class _RunCgroup:
    """One run's cgroup (v2: one directory; v1: one in the memory and one in the pids hierarchy)."""

    _count = 0

    def __init__(self, kind: str, parents: list[str], limits: SandboxLimits, tag: str):
        _RunCgroup._count += 1
        name = f"wb_sandbox_{os.getpid()}_{_RunCgroup._count}_{tag}"
        self.kind, self.dirs = kind, [os.path.join(p, name) for p in parents]
        mem = limits.memory_mb * 1024 * 1024
        made = []
        try:
            for d in self.dirs:
                os.mkdir(d)
                made.append(d)
            if kind == "v2":
                self._write(self.dirs[0], "memory.max", mem)
                self._write(self.dirs[0], "memory.swap.max", 0, optional=True)
                self._write(self.dirs[0], "pids.max", limits.nproc)
            else:
                self._write(self.dirs[0], "memory.limit_in_bytes", mem)
                self._write(self.dirs[0], "memory.memsw.limit_in_bytes", mem, optional=True)
                self._write(self.dirs[1], "pids.max", limits.nproc)
        except OSError:
            for d in made:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise
        self.procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]

    @staticmethod
    def _write(d: str, name: str, value, optional: bool = False) -> None:
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(str(value))
        except FileNotFoundError:
            if not optional:
                raise

    def oom_kills(self) -> int:
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            for line in open(os.path.join(self.dirs[0], name)):
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def _pids(self) -> list[int]:
        out = set()
        for p in self.procs:
            try:
                out.update(int(x) for x in open(p).read().split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def kill_and_remove(self, timeout_s: float) -> bool:
        """SIGKILL every process in it, then remove it; False if it could not be removed in time."""
        end = time.monotonic() + timeout_s
        if self.kind == "v2":
            try:
                self._write(self.dirs[0], "cgroup.kill", 1)
            except OSError:
                pass
        while True:
            for pid in self._pids():  # a listed pid is not reaped yet, so not reused (v1 has no cgroup.kill)
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            left = []
            for d in self.dirs:
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
            self.dirs = left
            if not left:
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.01)


# -------------------------------------------------------------------------------------- helpers
def _world_executable(path: str) -> bool:
    """Whether a user with no special rights can execute ``path`` (every parent directory searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & 0o005 == 0o005:
            return False
        return all(p.stat().st_mode & 0o001 for p in real.parents)
    except OSError:
        return False


def _resolve_python(limits: SandboxLimits, user) -> str:
    if limits.python:
        cands = [limits.python]
    else:
        cands = [sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3") or "",
                 "/usr/bin/python3"]
    cands = [c for c in cands if c and os.path.exists(c)]
    if user is None and cands:
        return cands[0]
    for c in cands:
        if _world_executable(c):
            return c
    who = "the pool's uids" if user == "pool" else f"user id {user[0] if user else '?'}"
    raise RuntimeError(f"no Python interpreter that {who} can execute among {cands}; "
                       "set SandboxLimits.python or SandboxLimits.run_as=None")


def _own_process_count() -> int:
    uid = os.getuid()
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _limiter(limits: SandboxLimits, ids: tuple[int, int] | None, nproc: int | None, cgroup_procs: list[str]):
    """The ``preexec_fn``: runs in the child between fork and exec. Only async-safe-ish work here."""
    mem = limits.memory_mb * 1024 * 1024
    cpu = int(limits.cpu_s)

    def apply():
        for path in cgroup_procs:  # join the run's cgroup first (still root); descendants stay in it
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if ids is not None:
            os.setgroups([])
            os.setresgid(ids[1], ids[1], ids[1])
            os.setresuid(ids[0], ids[0], ids[0])

    return apply


def _env(workdir: str) -> dict[str, str]:
    # minimal on purpose: nothing inherited (no tokens, keys, proxies); python -I ignores PYTHON* anyway
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir,
            "TMPDIR": workdir, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """Whether the child has exited, WITHOUT reaping it (its pid keeps reserving the group id)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _classify(rc: int | None, timed_out: bool, stderr: str, out_size: int, limits: SandboxLimits,
              oom_kills: int = 0) -> str:
    if timed_out:
        return "timeout"
    if rc == 0:
        return "ok"
    if rc == -signal.SIGXFSZ or (out_size >= limits.output_bytes and rc != 0):
        return "output_limit"
    if rc == -signal.SIGXCPU:
        return "cpu_limit"
    if oom_kills or "MemoryError" in stderr or rc == -signal.SIGSEGV and "Cannot allocate memory" in stderr:
        return "memory"
    if rc is not None and rc < 0:
        return "killed"
    return "error"


def sandbox_isolation(limits: SandboxLimits | None = None) -> dict:
    """How :func:`run_programs` would separate and bound runs under ``limits`` here (without running one):
    ``identity`` ('uid_pool', 'fixed_user' or 'shared_uid'), ``memory`` ('cgroup_v2', 'cgroup_v1' or
    'rlimit_as_per_process') and ``pids`` ('cgroup_v2', 'cgroup_v1', 'rlimit_nproc_per_uid' or 'none')."""
    limits = limits or SandboxLimits()
    user = _resolve_user(limits.run_as)
    cg = _cgroup_parents() if limits.cgroup != "off" else None
    if cg is None and limits.cgroup == "require":
        raise RuntimeError("SandboxLimits.cgroup='require' but no writable cgroup with the memory and pids "
                           "controllers is available (run as root on a cgroup v1 host, or in a cgroup v2 "
                           "subtree delegated with memory and pids); or use cgroup='auto'")
    identity = "uid_pool" if user == "pool" else "fixed_user" if user is not None else "shared_uid"
    root_as_root = user is None and os.geteuid() == 0
    return {"identity": identity, "memory": f"cgroup_{cg[0]}" if cg else "rlimit_as_per_process",
            "pids": f"cgroup_{cg[0]}" if cg else "none" if root_as_root else "rlimit_nproc_per_uid"}


def run_programs(jobs: Sequence[tuple[str, str]], limits: SandboxLimits | None = None, *,
                 progress: bool = False, desc: str = "running programs") -> list[RunResult]:
    """Run each ``(code, stdin)`` job in its own sandboxed subprocess, at most ``limits.max_workers``
    at a time. Returns one :class:`RunResult` per job, in order. See the module docstring.
    """
    limits = limits or SandboxLimits()
    for i, (code, stdin) in enumerate(jobs):
        if not isinstance(code, str) or not isinstance(stdin, str):
            raise TypeError(f"job {i}: code and stdin must be str, got {type(code).__name__}, {type(stdin).__name__}")
    iso = sandbox_isolation(limits)
    user = _resolve_user(limits.run_as)
    python = _resolve_python(limits, user)
    cg = _cgroup_parents() if limits.cgroup != "off" else None
    pool = _UidPool(limits) if user == "pool" else None
    if user is not None:
        nproc = limits.nproc
    elif os.geteuid() != 0:
        nproc = _own_process_count() + limits.nproc + limits.max_workers
    else:
        nproc = None  # root staying root: the kernel ignores RLIMIT_NPROC, so do not pretend
    results: list[RunResult | None] = [None] * len(jobs)
    pending = deque(range(len(jobs)))
    running: dict[int, dict] = {}
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress or len(jobs) == 0)

    def start(i: int):
        code, stdin = jobs[i]
        run: dict = {"box": None, "files": [], "slot": None, "cgroup": None, "iso": dict(iso)}
        running[i] = run
        if pool is not None:
            run["slot"] = pool.acquire()
            ids = (run["slot"][0], run["slot"][0])
            run["iso"]["uid"] = ids[0]
        else:
            ids = user if isinstance(user, tuple) else None
        # layout: <box>/ (ours, mode 0711) holds main.py (readable by the run's uid alone when it has one);
        # <box>/work/ (the program's cwd, HOME and TMPDIR, mode 0700) is the only place it owns.
        box = run["box"] = tempfile.mkdtemp(prefix="wb_sandbox_")
        work = os.path.join(box, "work")
        os.mkdir(work, 0o700)
        prog = Path(box) / "main.py"
        fd = os.open(prog, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(code)
        if ids is not None:
            os.chmod(box, 0o711)
            os.chown(prog, *ids)
            os.chmod(prog, 0o400)
            os.chown(work, *ids)
        # stdio are unnamed files opened here (as us) and inherited: no pipes to drain, no path another
        # program could open, and the output cap is RLIMIT_FSIZE itself.
        fin, fout, ferr = (tempfile.TemporaryFile(dir=box) for _ in range(3))
        run["files"] = [fin, fout, ferr]
        fin.write(stdin.encode())
        fin.flush()
        fin.seek(0)
        procs: list[str] = []
        if cg is not None:
            run["cgroup"] = _RunCgroup(cg[0], cg[1], limits, str(ids[0]) if ids else "self")
            procs = run["cgroup"].procs
        run["p"] = subprocess.Popen([python, "-I", str(prog)], stdin=fin, stdout=fout, stderr=ferr, cwd=work,
                                    env=_env(work), start_new_session=True, close_fds=True,
                                    preexec_fn=_limiter(limits, ids, nproc, procs))
        run["t0"] = time.monotonic()
        run["deadline"] = run["t0"] + limits.timeout_s

    def read(f, cap: int) -> tuple[str, int]:
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
        data = f.read(cap)
        return data.decode("utf-8", errors="replace"), size

    def cleanup(run: dict) -> int:
        """Kill every process of the run, reap the leader, remove its cgroup and files, free its uid."""
        p, oom, cleared = run.get("p"), 0, False
        if p is not None and p.returncode is None:
            _stop(run)
        try:
            if run["cgroup"] is not None:
                oom = run["cgroup"].oom_kills()
                cleared = run["cgroup"].kill_and_remove(limits.reap_timeout_s)
                if not cleared:
                    warnings.warn(f"could not remove the sandbox cgroup {run['cgroup'].dirs}")
        finally:
            if run["slot"] is not None:
                pool.release(*run["slot"], cleared=cleared)
            for f in run["files"]:
                f.close()
            if run["box"]:
                shutil.rmtree(run["box"], ignore_errors=True)  # does not follow symlinks
        return oom

    def _stop(run: dict) -> int:
        """SIGKILL the run's process group and (with a pool uid) all its uid's processes, then reap the leader:
        while unreaped, the leader's pid reserves the group id, so no unrelated group can be hit."""
        p = run["p"]
        _killpg(p.pid)
        if run["slot"] is not None and run["cgroup"] is None:  # with a cgroup, its kill reaches every process
            _kill_all_of(run["slot"][0], run["slot"][0])
        p.kill()
        return p.wait()

    def finish(i: int, timed_out: bool):
        run = running[i]
        rc = _stop(run)
        wall = time.monotonic() - run["t0"]
        fout, ferr = run["files"][1:]
        stdout, out_size = read(fout, limits.output_bytes)
        stderr, _ = read(ferr, 20_000)
        running.pop(i)
        oom = cleanup(run)
        results[i] = RunResult(_classify(rc, timed_out, stderr, out_size, limits, oom), rc, stdout, stderr, wall,
                               run["iso"])
        bar.update(1)

    try:
        while pending or running:
            while pending and len(running) < limits.max_workers:
                start(pending.popleft())
            now = time.monotonic()
            for i in list(running):
                run = running[i]
                if _exited(run["p"].pid):
                    finish(i, False)
                elif now > run["deadline"]:
                    finish(i, True)
            if running:
                time.sleep(0.003)
    finally:  # on an exception (or KeyboardInterrupt) leave nothing running behind
        for i in list(running):
            cleanup(running.pop(i))
        bar.close()
    return results  # type: ignore[return-value]


def run_program(code: str, stdin: str = "", limits: SandboxLimits | None = None) -> RunResult:
    """One sandboxed run (see :func:`run_programs`)."""
    return run_programs([(code, stdin)], limits)[0]


__all__ = ["STATUSES", "SandboxLimits", "RunResult", "run_programs", "run_program", "sandbox_isolation"]
