"""The tasks, one package each: options.py (no torch), model.py, the task's
own work, outputs.py (the whole job) and cli.py (its flags and summary line).
Every task runs its optimisation through ddip_video.fit. A new task is a new
package here and its name in TASKS; no other task's file changes."""
from __future__ import annotations

import importlib
from types import ModuleType

TASKS = ("fgbg", "transition")


def task_cli(name: str) -> ModuleType:
    """The task's cli module: HELP, DESCRIPTION, DEFAULTS, add_arguments(parser), run(args, common)."""
    return importlib.import_module(f"{__name__}.{name}.cli")
