"""Run a sweep's grid on Ray: one task per missing run, on this machine by default or on an existing cluster.

Plain Ray tasks, not Ray Tune: every point already is a resumable run folder (``evolve`` checkpoints each
generation, locks its folder, shares the ancestor), and a fixed grid needs no search algorithm, scheduler or
early stopping; Tune would add its own trial folders and pickled experiment state beside ours, and a heavier
install. A task reserves ``threads_per_run`` CPUs and torch uses exactly that many threads, so runs never
oversubscribe a node. ``evosynth sweep`` is the command; book/scaling.md explains the cluster set-up.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from tqdm.auto import tqdm

from evosynth.errors import EvosynthError
from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve
from evosynth.study.grid import SweepGrid
from evosynth.study.sweep import (
    run_is_complete,
    sweep_table,
    sweep_table_path,
    write_sweep_table,
)

# Set before Ray starts (unless the user chose otherwise): no usage statistics are reported anywhere.
QUIET_RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}
# Limits on Ray itself (seconds): a local instance starts in 5-15 s on 2 cores and stops in 1-5 s; past these it is
# stuck (a shutdown that never returned was seen here under load), and the sweep says so instead of waiting.
RAY_START_LIMIT_S = 120
RAY_SHUTDOWN_LIMIT_S = 60
# How long one run of a sweep may take: a 13-generation `paper` run on one thread of the slower (Intel Xeon) kind
# takes about 30-40 minutes; six times that is room, not infinity (`evosynth sweep --run-limit` changes it).
RUN_LIMIT_S = 4 * 3600


class SweepFailedError(EvosynthError):
    """Some points of a sweep failed; the others finished and are in the table."""


class RayStuckError(EvosynthError):
    """Ray did not start (or stop) within its limit."""


@dataclass(frozen=True)
class PointFailure:
    folder: Path
    error: str


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep did: the table it wrote, the runs it ran, those already complete, and those that failed."""

    table: Path
    rows: int
    ran: tuple[Path, ...]
    already_complete: tuple[Path, ...]
    failed: tuple[PointFailure, ...]

    def raise_for_failures(self) -> None:
        """Name every failed point (the others are in the table): rerunning the sweep retries only them."""
        if self.failed:
            failures = "\n".join(f"  {failure.folder}: {failure.error}" for failure in self.failed)
            total = len(self.ran) + len(self.already_complete) + len(self.failed)
            raise SweepFailedError(f"{len(self.failed)} of {total} runs failed (the others are in {self.table}; "
                                   f"rerun the same command to retry them):\n{failures}")


def run_grid(
    grid: SweepGrid,
    runs_dir: Path,
    cache_dir: Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    threads_per_run: int = 1,
    run_limit_s: float = RUN_LIMIT_S,
) -> SweepOutcome:
    """Run every incomplete point of ``grid`` as a Ray task, then write the results table.

    Complete runs are not submitted; incomplete ones resume inside ``evolve``. A failed point is reported (its
    folder and error) while the others go on. Uses the Ray this process is already connected to if any (tests,
    notebooks); otherwise connects to ``address`` or starts a private local instance of ``num_cpus`` CPUs. When no
    run finishes within ``run_limit_s`` the runs still pending are cancelled and reported as failed (their finished
    generations are kept: rerunning resumes them).
    """
    if threads_per_run < 1:
        raise ValueError(f"threads per run must be at least 1, got {threads_per_run}")
    if address is not None and num_cpus is not None:
        raise ValueError("--num-cpus sizes a local Ray instance; a cluster given by --address has its own CPUs")
    # Absolute, because Ray workers do not share the driver's working directory (nor, on a cluster, its machine).
    runs_dir, cache_dir = runs_dir.resolve(), cache_dir.resolve()
    missing = [point for point in grid.points if not run_is_complete(point, runs_dir / point.name)]
    complete = tuple(runs_dir / point.name for point in grid.points if point not in missing)
    ran: list[Path] = []
    failed: list[PointFailure] = []
    with tqdm(total=len(grid.points), initial=len(complete), desc=f"sweep {grid.name}", unit="run") as bar:
        if missing:
            with ray_session(address, num_cpus):
                points = ancestors_first(missing)
                for folder, error in _run_points(points, runs_dir, cache_dir, threads_per_run, run_limit_s):
                    if error is None:
                        ran.append(folder)
                    else:
                        failed.append(PointFailure(folder, error))
                        tqdm.write(f"failed: {folder}: {error}")
                        bar.set_postfix(failed=len(failed))
                    bar.update()
    table = sweep_table(grid.points, runs_dir)
    path = sweep_table_path(runs_dir, grid.name)
    write_sweep_table(table, path)
    return SweepOutcome(path, len(table), tuple(ran), complete, tuple(failed))


def ancestors_first(points: Sequence[RunConfig]) -> list[RunConfig]:
    """Submission order: one point of every ancestor before a second of any, so that the first tasks train
    different ancestors in parallel instead of waiting for one (points sharing an ancestor take turns on it)."""
    groups: dict[str, list[RunConfig]] = defaultdict(list)
    for point in points:
        groups[point.ancestor_name].append(point)
    rounds = max(len(group) for group in groups.values())
    return [group[turn] for turn in range(rounds) for group in groups.values() if turn < len(group)]


def _run_points(
    points: Sequence[RunConfig], runs_dir: Path, cache_dir: Path, threads: int, run_limit_s: float
) -> Iterator[tuple[Path, str | None]]:
    """Submit every point, then yield (run folder, error or None) as each task ends, in the order they end.

    Between two endings no task can run longer than the gap (a task that is running began at or before the last
    ending), so waiting at most ``run_limit_s`` for the next ending never stops a run that keeps to the limit.
    """
    ray = _import_ray()
    from ray.exceptions import RayError, RayTaskError

    largest_node = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
    if threads > largest_node:  # a task runs on one node: it would wait for ever
        raise ValueError(f"a run asks for {threads} CPUs (--threads-per-run) but the largest node of the Ray cluster "
                         f"has {largest_node:g}")
    task = ray.remote(evolve_point).options(num_cpus=threads)
    pending = {task.remote(point, runs_dir / point.name, cache_dir, threads): runs_dir / point.name
               for point in points}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=run_limit_s)
        if not ready:
            for reference, folder in pending.items():
                ray.cancel(reference, force=True)
                yield folder, f"no run ended within the limit of {run_limit_s:g} s (--run-limit): cancelled"
            return
        [done] = ready
        folder = pending.pop(done)
        try:
            ray.get(done)
        except RayTaskError as error:  # the run raised: its own exception says what is wrong
            yield folder, f"{type(error.cause).__name__}: {error.cause}"
        except RayError as error:  # the worker or its node died (Ray has retried it already)
            yield folder, f"{type(error).__name__}: {error}"
        else:
            yield folder, None


def evolve_point(config: RunConfig, folder: Path, cache_dir: Path, threads: int) -> None:
    """One grid point, inside a Ray task: torch gets exactly the CPUs the task reserved."""
    torch.set_num_threads(threads)
    evolve(config, folder, cache_dir)


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise EvosynthError("evosynth sweep runs on Ray, which is not installed: pip install -e '.[sweep]'") from None
    return ray


def call_within(limit_s: float, what: str, call: Callable[[], object]) -> bool:
    """Run ``call`` in a helper thread and wait for it at most ``limit_s``: True if it returned in time.

    Its exception, if it raised in time, is raised here. For calls that may run on any thread (``ray.shutdown``);
    ``ray.init`` may not, see ``start_ray``.
    """
    raised: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as error:  # re-raised in the caller's thread
            raised.append(error)

    worker = threading.Thread(target=target, name=f"evosynth: {what}", daemon=True)
    worker.start()
    worker.join(limit_s)
    if raised:
        raise raised[0]
    return not worker.is_alive()


# What the command lines of a local Ray instance's processes contain (its GCS server, raylet, agents and workers).
RAY_PROCESS_MARKERS = ("gcs_server", "raylet", "ray/_private/", "ray/dashboard/", "ray/autoscaler/", "ray::")


def stop_local_ray_processes() -> list[str]:
    """Kill what a local instance started from this process left running (GCS, raylet, workers): a stuck shutdown
    would otherwise keep them and this process alive. Returns their names."""
    import psutil  # a dependency of Ray

    killed = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(marker in " ".join(child.cmdline()) for marker in RAY_PROCESS_MARKERS):
                killed.append(f"{child.name()} ({child.pid})")
                child.kill()
        except psutil.Error:  # it ended meanwhile
            continue
    return killed


class _StartInterrupted(BaseException):
    """Raised in the thread waiting for ``ray.init`` by ``start_ray``'s watchdog (a BaseException, so that no
    ``except Exception`` inside Ray swallows it)."""


def start_ray(**init_options: object) -> None:
    """``ray.init`` within ``RAY_START_LIMIT_S``; a start that hangs is stopped and named.

    ``ray.init`` runs on the calling thread: Ray's processes die with the thread that started them (Linux's
    parent-death signal), so it cannot run in a helper thread like ``stop_ray``'s shutdown. A watchdog kills a stuck
    start's processes and, on the main thread, interrupts the wait with a signal of its own (SIGUSR1, whatever
    SIGINT's handler is at the time).
    """
    ray = _import_ray()
    on_main_thread = threading.current_thread() is threading.main_thread()
    returned = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        raise _StartInterrupted

    def give_up() -> None:
        if returned.is_set():
            return
        stop_local_ray_processes()
        if on_main_thread:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt) if on_main_thread else None
    watchdog = threading.Timer(RAY_START_LIMIT_S, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        ray.init(**init_options)
    except _StartInterrupted:
        raise RayStuckError(f"Ray did not start within {RAY_START_LIMIT_S} s (options {init_options}); its logs are "
                            "under /tmp/ray/session_latest/logs") from None
    finally:
        returned.set()
        watchdog.cancel()
        if on_main_thread:
            signal.signal(signal.SIGUSR1, previous if previous is not None else signal.SIG_DFL)


def stop_ray() -> None:
    """``ray.shutdown`` within ``RAY_SHUTDOWN_LIMIT_S``; past it, the local instance's processes are killed and a
    warning says so (the sweep's work is done and saved by then, so it is not failed for it)."""
    ray = _import_ray()
    if not call_within(RAY_SHUTDOWN_LIMIT_S, "ray.shutdown", ray.shutdown):
        killed = stop_local_ray_processes()
        tqdm.write(f"warning: Ray did not shut down within {RAY_SHUTDOWN_LIMIT_S} s; killed its {len(killed)} "
                   "local process(es)")


@contextmanager
def ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """Ray for the sweep: the one this process already uses, an existing cluster (``address``: ``auto`` or
    ``ray://host:port``), or a private local instance; what this function started it stops. Starting and stopping
    have limits (``start_ray``, ``stop_ray``).

    The local instance has no dashboard and reports no usage statistics; worker output stays in Ray's log files
    (its per-run progress bars would bury the sweep's).
    """
    ray = _import_ray()

    if ray.is_initialized():
        yield
        return
    for name, value in QUIET_RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if address is None:  # "local": a new instance, even where RAY_ADDRESS or a `ray start` cluster exists
        start_ray(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                  log_to_driver=False, logging_level=logging.WARNING)
    else:
        start_ray(address=address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        stop_ray()
