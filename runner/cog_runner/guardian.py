"""The runner's guardian: nothing the predictor starts outlives the runner or
the server.

cog-server spawns `python3 -m cog_runner` in a process group of its own and
asks the kernel to kill it if the server dies (PR_SET_PDEATHSIG; a runner
started otherwise, as a sidecar's, is not guarded). That alone would leave behind,
after `kill -9` of the server, every subprocess the predictor started (only
the runner gets the kernel's signal), and a subprocess that calls setsid()
escapes the group's kill. So the runner forks once, first thing: the child
serves as the runner, the parent stays behind as its guardian, which

* is a child subreaper: every orphan of the runner's tree (a daemon that
  double-forks, a setsid() grandchild) is re-parented to it, and reaped;
* takes the runner down with it (the runner's parent-death signal is SIGKILL),
  and hears the server's death (its own parent-death signal becomes SIGUSR2,
  checked against getppid()): it then kills every descendant and exits;
* when the runner ends, kills what it left behind and ends the same way (the
  same exit code, or the same signal), so the server sees the runner's end;
* passes on SIGTERM, SIGINT and SIGHUP sent to it alone (as PID 1 of a
  container gets them), not only to the group.

It is one small process that sleeps in sigwaitinfo(). Linux only: elsewhere,
or if prctl cannot be reached, the runner runs unguarded.
"""

import ctypes
import os
import resource
import signal
import sys
from typing import Callable, Dict, List, Optional

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_CHILD_SUBREAPER = 36

# The guardian's parent-death signal: one nothing else sends it.
PARENT_DIED = signal.SIGUSR2
PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WATCHED = {signal.SIGCHLD, PARENT_DIED, *PASSED_ON}

Prctl = Callable[[int, int, int, int, int], int]


def _prctl() -> Optional[Prctl]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def guard() -> None:
    """Forks the runner off and guards it. Returns in the runner; the guardian
    never returns (it exits as the runner did)."""
    prctl = _prctl()
    if prctl is None:
        return
    # Only cog-server's spawn asks for a parent-death signal: a runner started
    # by hand, or by a sidecar's model container, runs as it is.
    asked = ctypes.c_int(0)
    if prctl(PR_GET_PDEATHSIG, ctypes.addressof(asked), 0, 0, 0) != 0 or asked.value == 0:
        return
    parent = os.getppid()
    # Blocked before the fork: a signal that comes early waits for sigwaitinfo.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    prctl(PR_SET_PDEATHSIG, PARENT_DIED, 0, 0, 0)
    if os.getppid() != parent:  # the server died before that took effect
        os._exit(1)
    guardian = os.getpid()
    runner = os.fork()
    if runner == 0:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != guardian:  # the guardian died before that took effect
            os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    status = _watch(runner, parent)
    _kill_descendants()
    _exit_like(status)


def _watch(runner: int, parent: int) -> int:
    """Waits for the runner's end (its wait status), reaping orphans on the
    way; returns early, with a SIGKILL status, when the server dies."""
    while True:
        signo = signal.sigwaitinfo(WATCHED).si_signo
        if signo == signal.SIGCHLD:
            status = _reap(runner)
            if status is not None:
                return status
        elif os.getppid() != parent:
            # Our parent-death signal, or anything else after the server died.
            return 9  # wait status of a SIGKILL
        elif signo in PASSED_ON:
            try:
                os.kill(runner, signo)
            except ProcessLookupError:
                pass
        # else: PARENT_DIED with the server still our parent: the server thread
        # that started us ended, not the server. The signal stays armed.


def _reap(runner: int) -> Optional[int]:
    """Reaps every child that has ended; the runner's wait status if it has."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == runner:
            status = wait_status


def _children_of() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # comm may hold spaces and ')'
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def _descendants(root: int) -> List[int]:
    children = _children_of()
    found: List[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_descendants() -> None:
    """SIGKILLs the whole tree under the guardian (the runner, what it started,
    and the orphans that came here), reaping, until nothing is left. Bounded:
    a process stuck in the kernel may stay; the guardian exits anyway."""
    for _ in range(1000):
        descendants = _descendants(os.getpid())
        if not descendants:
            return
        for pid in descendants:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(0)
        signal.sigtimedwait({signal.SIGCHLD}, 0.005)
        _reap(0)


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        signo = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the runner's crash, not ours
        if signo not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signo, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signo})
        os.kill(os.getpid(), signo)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
