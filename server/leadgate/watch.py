"""Watching the rules directory and reloading the store when a rules file is complete.

The directory is watched, never single files: editors that save by renaming and
Kubernetes ConfigMaps that swap a `..data` symlink replace the file itself. A file
written in place is read only once its writer has closed it (inotify's close-write),
never on a mere modification, so a half-written file is not loaded. Any event is only a
hint; the store re-reads every file and compares content hashes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from leadgate.store import LoadReport, RulesStore

log = structlog.get_logger("leadgate.watch")
# What a finished change looks like: a writer closed the file, a file was renamed into
# place, or one went away. Polling sees no closes, so there a modification counts too.
# TODO: with polling, a writer pausing mid-file for longer than the debounce can get a
# half-written (but valid and tested) file loaded; only inotify's close events avoid it.
FINISHED = frozenset({"closed", "moved", "deleted"})
POLLED = FINISHED | {"created", "modified"}


class _Events(FileSystemEventHandler):
    """Turns file-system events into reload requests."""

    def __init__(self, poke: Callable[[], None], *, polling: bool) -> None:
        self._poke = poke
        self._wanted = POLLED if polling else FINISHED

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        wanted = event.event_type in self._wanted
        linked = event.event_type == "created" and os.path.islink(path)
        if wanted or linked:
            self._poke()


class RulesWatcher:
    """Reloads the store after each burst of finished changes under its directory."""

    def __init__(
        self,
        store: RulesStore,
        *,
        debounce_ms: int = 200,
        poll: bool = False,
        on_reload: Callable[[LoadReport], None] | None = None,
    ) -> None:
        self.store = store
        self._debounce = debounce_ms / 1000
        self._on_reload = on_reload
        self._observer: BaseObserver = (
            PollingObserver(timeout=0.3) if poll else Observer()
        )
        self._observer.schedule(
            _Events(self._poke, polling=poll), str(store.directory), recursive=True
        )
        self._due = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="rules-reload", daemon=True
        )

    def start(self) -> None:
        """Start watching; changes from now on are picked up."""
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the threads to end."""
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    def _poke(self) -> None:
        self._due = time.monotonic() + self._debounce
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set() and time.monotonic() < self._due:
                self._stop.wait(self._due - time.monotonic())
            if not self._stop.is_set():
                self._reload()

    def _reload(self) -> None:
        try:
            report = self.store.load()
        except Exception:  # the watch must outlive any one bad reload
            log.exception("rules.reload_failed")
            return
        quiet = not (report.activated or report.retired or report.errors)
        (log.debug if quiet else log.info)(
            "rules.reloaded",
            activated=list(report.activated),
            retired=list(report.retired),
            rejected=len(report.errors),
        )
        if self._on_reload is not None:
            self._on_reload(report)
