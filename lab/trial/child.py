"""`python -m pglab.lab.trial.child MODULE ARGS...`: runs `python -m MODULE ARGS...` as a lab child
that dies with the lab, even when the lab is killed with SIGKILL and runs no cleanup.

Why the child arranges this itself rather than through `Popen(preexec_fn=...)`: around a
preexec_fn, Python runs its fork handlers in the lab, and a Ctrl-C or SIGTERM that lands in one
is printed as "Exception ignored" and lost, so the lab ran on (CI saw it: the lab stopped only
when its 60 s load ended). A preexec_fn is also unsafe in a process that runs threads, as the
lab does while it samples. Without one, the child is started by a plain fork-and-exec.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from pglab.lab.postgres.leftovers import set_parent_death_signal

PARENT_VARIABLE = "PGLAB_CHILD_PARENT"  # the lab's pid: if the child's parent is another, the lab is gone


def command(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", __name__, module, *args]


def main() -> None:
    set_parent_death_signal(signal.SIGTERM)
    if str(os.getppid()) != os.environ.get(PARENT_VARIABLE):
        sys.exit("pglab: the lab that started this process has already exited")  # died before we asked
    module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
