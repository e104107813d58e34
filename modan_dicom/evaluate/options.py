"""Torch-free checks of the evaluation commands' arguments (`--init`, modes, output folders).

The CLI calls these before it imports torch, so a typo fails in a fraction of a second and creates
nothing; `embed` and `benchmark` call them too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError, SourceError

MODES = ("finetune", "linear")


def parse_init(text: str) -> tuple[str, str]:
    """One ``--init`` value → (name, spec).

    ``NAME=SPEC`` (split at the first ``=``), or a bare built-in (``scratch``, ``scratch:N``, ``imagenet``),
    which names itself. SPEC is a built-in or a path to an encoder file.
    Raises `ConfigError` for an empty name or spec, or a bare value that is not a built-in.
    """
    value = text.strip()
    if "=" in value:
        name, spec = (part.strip() for part in value.split("=", 1))
        if not name or not spec:
            raise ConfigError(f"malformed --init {text!r}: expected NAME=encoder.pt, scratch or imagenet")
        return name, spec
    if builtin_init(value) is not None:
        return value, value
    raise ConfigError(f"malformed --init {text!r}: expected NAME=encoder.pt, scratch, scratch:SEED or imagenet")


def parse_inits(texts: Iterable[str]) -> dict[str, str]:
    """Several ``--init`` values → {name: spec} in the given order; a name given twice is a `ConfigError`."""
    specs: dict[str, str] = {}
    for text in texts:
        name, spec = parse_init(text)
        if name in specs:
            raise ConfigError(f"encoder name '{name}' given twice in --init")
        specs[name] = spec
    return specs


def builtin_init(spec: str) -> tuple[str, int | None] | None:
    """("scratch", seed or None) / ("imagenet", None) for a built-in spec, else None."""
    if spec == "imagenet":
        return "imagenet", None
    if spec == "scratch":
        return "scratch", None
    if spec.startswith("scratch:"):
        try:
            return "scratch", int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"malformed encoder spec {spec!r}: scratch:SEED needs an integer seed") from None
    return None


def check_init_files(inits: Mapping[str, str]) -> None:
    """`SourceError` when an init that is not a built-in names a file that does not exist."""
    for name, spec in inits.items():
        if builtin_init(spec) is None and not Path(spec).is_file():
            raise SourceError(f"--init {name}: encoder file not found: {spec}")


def check_benchmark_options(tasks: Sequence[str], inits: Mapping[str, str], out: str | os.PathLike[str], *,
                            modes: Sequence[str] = MODES, resume: bool = False, reference: str | None = None,
                            data_dir: str | os.PathLike[str] | None = None) -> None:
    """The benchmark's argument checks, before any work: ConfigError (modes, no task or init, a reference that
    is not an init, a non-empty `out` without `resume`, a task that is neither a task name nor a path, under
    `data_dir` or not), OutputError (`out` not a benchmark's folder), SourceError (a missing encoder file)."""
    from .tasks import TASK_NAMES

    from ..outputs import report_folder

    if not modes or any(m not in MODES for m in modes):
        raise ConfigError(f"modes must be among {', '.join(MODES)}, not {', '.join(modes) or 'none'}")
    if not tasks or not inits:
        raise ConfigError("benchmark needs at least one task and one init")
    for task in tasks:
        if task.lower() not in TASK_NAMES and not Path(task).exists() and not (
                data_dir is not None and (Path(data_dir) / task).exists()):
            raise ConfigError(f"unknown task {task!r}: give {', '.join(TASK_NAMES)} or the path of a task's data")
    if reference is not None and reference not in inits:
        raise ConfigError(f"reference {reference!r} is not one of the inits ({', '.join(inits)})")
    folder = Path(out)
    if folder.is_dir() and any(folder.iterdir()) and not resume:
        raise ConfigError(f"{out} is not empty: pass resume=True (--resume) to continue it, or choose a new folder")
    report_folder(folder)
    check_init_files(inits)
