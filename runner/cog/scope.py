"""current_scope(): what a running prediction may ask of the runtime."""

import contextvars
from typing import Any, Callable, Dict, Optional


class Scope:
    """The scope of one prediction: its context and its metrics."""

    def __init__(self, context: Optional[Dict[str, str]] = None,
                 record: Optional[Callable[[str, Any, str], None]] = None) -> None:
        self.context: Dict[str, str] = dict(context or {})
        self._record = record

    def record_metric(self, name: str, value: Any, mode: str = "replace") -> None:
        if mode not in ("replace", "incr", "append"):
            raise ValueError("mode must be 'replace', 'incr' or 'append', not %r" % (mode,))
        if self._record is not None:
            self._record(name, value, mode)


_current: "contextvars.ContextVar[Scope]" = contextvars.ContextVar("cog_scope", default=Scope())


def current_scope() -> Scope:
    return _current.get()


def emit_metric(name: str, value: Any) -> None:
    current_scope().record_metric(name, value)


def _set_scope(scope: Scope) -> contextvars.Token:
    return _current.set(scope)


def _reset_scope(token: contextvars.Token) -> None:
    _current.reset(token)
