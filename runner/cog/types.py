"""The types a predictor's signature may use: Input, Path, Secret, iterators, BaseModel."""

import dataclasses
import pathlib
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional, TypeVar

T = TypeVar("T")

_MISSING = object()


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What Input(...) returns: the default and constraints of one input."""

    default: Any = _MISSING
    default_factory: Optional[Callable[[], Any]] = None
    description: Optional[str] = None
    ge: Optional[float] = None
    le: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    regex: Optional[str] = None
    choices: Optional[List[Any]] = None
    deprecated: Optional[bool] = None

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING or self.default_factory is not None


def Input(  # noqa: N802 - Cog's public name
    default: Any = _MISSING,
    *,
    description: Optional[str] = None,
    ge: Optional[float] = None,
    le: Optional[float] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    regex: Optional[str] = None,
    choices: Optional[List[Any]] = None,
    deprecated: Optional[bool] = None,
    default_factory: Optional[Callable[[], Any]] = None,
) -> Any:
    """Describes an input: `prompt: str = Input(description="...", max_length=100)`."""
    return FieldInfo(
        default=default,
        default_factory=default_factory,
        description=description,
        ge=ge,
        le=le,
        min_length=min_length,
        max_length=max_length,
        regex=regex,
        choices=choices,
        deprecated=deprecated,
    )


class Path(pathlib.PosixPath):
    """A file: downloaded for inputs, uploaded (or inlined) for outputs."""


class Secret:
    """A string that is never printed or echoed back (shown as '**********')."""

    def __init__(self, secret_value: Optional[str] = None) -> None:
        self._secret_value = secret_value

    def get_secret_value(self) -> Optional[str]:
        return self._secret_value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._secret_value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._secret_value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._secret_value == self._secret_value

    def __hash__(self) -> int:
        return hash(self._secret_value)


class ConcatenateIterator(Iterator[T]):
    """An iterator output whose items a client shows concatenated (token streaming)."""


class AsyncConcatenateIterator(AsyncIterator[T]):
    """The async form of ConcatenateIterator."""


class BaseModel:
    """An output object with named fields, like pydantic's, without pydantic.

    Subclasses are turned into dataclasses, so `class Output(BaseModel): x: int`
    can be built as `Output(x=1)`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(cls)

