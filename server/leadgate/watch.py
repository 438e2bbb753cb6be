"""Watching the rules directory and reloading the store when anything under it changes.

The directory is watched, never single files: editors that save by renaming and
Kubernetes ConfigMaps that swap a `..data` symlink replace the file itself. Any change
is only a hint; the store re-reads every file and compares content hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from watchfiles import watch

from leadgate.store import LoadReport, RulesStore

log = structlog.get_logger("leadgate.watch")


class RulesWatcher:
    """A background thread that reloads the store after each burst of file changes."""

    def __init__(
        self,
        store: RulesStore,
        *,
        debounce_ms: int = 200,
        poll: bool = False,
        on_reload: Callable[[LoadReport], None] | None = None,
    ) -> None:
        self.store = store
        self._on_reload = on_reload
        self._debounce_ms = debounce_ms
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="rules-watch", daemon=True
        )
        self._ready = threading.Event()

    def start(self) -> None:
        """Start watching; returns once the watch is in place."""
        self._thread.start()
        self._ready.wait(timeout=5)

    def stop(self) -> None:
        """Stop watching and wait for the thread to end."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        changes = watch(
            self.store.directory,
            stop_event=self._stop,
            debounce=self._debounce_ms,
            step=50,
            rust_timeout=200,
            yield_on_timeout=True,
            force_polling=self._poll,
            poll_delay_ms=300,
        )
        for batch in changes:
            self._ready.set()
            if batch:
                self._reload(len(batch))

    def _reload(self, changed: int) -> None:
        try:
            report = self.store.load()
        except Exception:  # the watch must outlive any one bad reload
            log.exception("rules.reload_failed")
            return
        quiet = not (report.activated or report.retired or report.errors)
        (log.debug if quiet else log.info)(
            "rules.reloaded",
            changed_paths=changed,
            activated=list(report.activated),
            retired=list(report.retired),
            rejected=len(report.errors),
        )
        if self._on_reload is not None:
            self._on_reload(report)
