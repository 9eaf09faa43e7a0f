"""Shared pieces of the input models: the strict base model, unit-carrying aliases, arrays, loading.

Every input model derives from :class:`StrictModel`: unknown fields are errors, numbers must be finite,
strings are not coerced to numbers, and models are frozen once built. Loading goes through JSON
(``model_validate_json``) so files, strings and dicts are validated by the same rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
from eth_utils import to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    model_serializer,
)

from bondfolio.errors import InputError

__all__ = [
    "Address",
    "Amount",
    "Apy",
    "Fraction",
    "Matrix",
    "OmitUnset",
    "StrictModel",
    "Vector",
    "Years",
    "canonical_json",
    "checksum_address",
    "parse_address",
    "read_document",
    "sha256_hex",
    "validate_document",
]


class StrictModel(BaseModel):
    """Base of every input model: strict types, no unknown fields, finite numbers, frozen."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
        arbitrary_types_allowed=True,
        use_attribute_docstrings=True,
    )


class OmitUnset(BaseModel):
    """Mixin for models that grew optional parts after records were written: the fields named in
    :attr:`omit_when_none` are left out of the dump when they are ``None``, so the canonical form (and
    every sha256 over it) of a document that does not use them is what it was before they existed."""

    omit_when_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in type(self).omit_when_none:
                if key in data and data[key] is None:
                    del data[key]
        return data


def checksum_address(value: str, what: str = "address") -> str:
    """``value`` as a checksummed address; ``ValueError`` unless it is 0x + 40 hex digits."""
    if not isinstance(value, str) or not re.match(r"^0x[0-9a-fA-F]{40}$", value):
        raise ValueError(f"{what} {value!r} is not a 0x-prefixed 20-byte hex address")
    return str(to_checksum_address(value))


def parse_address(value: str, what: str) -> str:
    """An address given outside a model (a command-line flag): checksummed, or an
    :class:`~bondfolio.errors.InputError` naming ``what``."""
    try:
        return checksum_address(value, what)
    except ValueError as exc:
        raise InputError(f"{exc}: give 0x followed by 40 hex digits") from None


Address = Annotated[str, AfterValidator(checksum_address)]
"""A 0x-prefixed 20-byte hex address, stored checksummed."""

# Domain quantities. Units are part of the name; field docstrings repeat them.
Apy = Annotated[float, Field(ge=-1.0, le=10.0)]
"""An annual yield as a decimal (0.05 = 5 %). Bounded to catch percent-vs-decimal mistakes (500 % max)."""
Years = float
"""A time span in years."""
Amount = Annotated[float, Field(ge=0.0)]
"""A non-negative amount in the snapshot's base currency."""
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
"""A share of the portfolio's NAV in [0, 1]."""


def _to_array(ndim: int) -> Callable[[Any], np.ndarray]:
    def convert(value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            array = value.astype(float, copy=True)
        else:
            if not isinstance(value, list | tuple):
                raise ValueError(f"expected a {ndim}-dimensional array of numbers, got {type(value).__name__}")
            try:
                array = np.asarray(value, dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"expected a {ndim}-dimensional array of numbers: {exc}") from None
        if array.ndim != ndim and not (ndim == 2 and array.size == 0):
            raise ValueError(f"expected a {ndim}-dimensional array, got {array.ndim} dimensions")
        if ndim == 2 and array.size == 0:
            array = array.reshape(0, 0)
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            where = ", ".join(str(tuple(int(i) for i in b)) for b in bad[:5])
            raise ValueError(f"array holds non-finite numbers at {where}: every entry must be finite")
        array.setflags(write=False)
        return array

    return convert


def _dump_array(value: np.ndarray) -> list[Any]:
    return list(value.tolist())


Vector = Annotated[
    np.ndarray,
    BeforeValidator(_to_array(1)),
    PlainSerializer(_dump_array, return_type=list),
    WithJsonSchema({"type": "array", "items": {"type": "number"}}),
]
"""A finite 1-d float array (a JSON list of numbers); read-only once validated."""

Matrix = Annotated[
    np.ndarray,
    BeforeValidator(_to_array(2)),
    PlainSerializer(_dump_array, return_type=list),
    WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
]
"""A finite 2-d float array (a JSON list of rows); read-only once validated."""


def canonical_json(data: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, shortest float repr, UTF-8 kept as is.

    The same data always gives the same text, so hashes over it identify inputs across machines.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


M = TypeVar("M", bound=BaseModel)


def read_document(path: str | Path) -> Any:
    """Read a JSON or TOML file (by extension) into Python data, with errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"file '{path}' does not exist: check the path") from None
    except OSError as exc:
        raise InputError(f"file '{path}' cannot be read: {exc.strerror}") from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"file '{path}' is not valid TOML: {exc}") from None
    try:
        # NaN/Infinity tokens are read here and rejected by validation, which names the field and id
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"file '{path}' is not valid JSON: {exc}") from None


def read_source(source: str | Path | Mapping[str, Any], noun: str) -> tuple[Any, str]:
    """Python data and a label for messages, from a file path, JSON text, TOML text or a mapping.

    A string is JSON text when it starts with ``{``; TOML text when it spans lines or starts with ``[``
    (a table) and is not JSON; otherwise a file path (JSON, or TOML by its ``.toml`` extension)."""
    if isinstance(source, Path):
        return read_document(source), f"{noun} '{source}'"
    if isinstance(source, str):
        text = source.lstrip()
        if text.startswith("{"):
            try:
                return json.loads(source), noun
            except json.JSONDecodeError as exc:
                raise InputError(f"{noun} is not valid JSON: {exc}") from None
        if "\n" in source or text.startswith("["):
            if text.startswith("["):
                try:
                    return json.loads(source), noun
                except json.JSONDecodeError:
                    pass
            try:
                return tomllib.loads(source), noun
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{noun} is neither valid JSON nor valid TOML text: {exc}") from None
        return read_document(source), f"{noun} '{source}'"
    return source, noun


Describe = Callable[[tuple[int | str, ...]], str]


def validate_document(
    model: type[M],
    data: Any,
    source: str,
    describe: Describe | None = None,
) -> M:
    """Validate ``data`` (a model, a mapping or a JSON string) as ``model``.

    Mappings go through JSON so they obey the same strict rules as files. Validation errors become
    one :class:`~bondfolio.errors.InputError` listing every problem, with locations turned into
    readable subjects by ``describe`` (for example ``opportunity 'aave-v3-usdc'`` instead of
    ``opportunities.3``).
    """
    if isinstance(data, model):
        return data
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        if isinstance(data, Mapping):
            text = json.dumps(data, default=_json_default, allow_nan=True)
            return model.model_validate_json(text)
        if isinstance(data, BaseModel):
            return model.model_validate_json(data.model_dump_json())
    except ValidationError as exc:
        problems = [line for err in exc.errors() for line in _format_error(err, describe)]
        raise InputError(problems, source) from None
    raise InputError(f"expected a {model.__name__}, a mapping or JSON text, got {type(data).__name__}", source)


def parse_tagged(
    items: Sequence[Any],
    kinds: Mapping[str, type[M]],
    tag: str,
    noun: str,
    name_field: str,
    unknown: str,
) -> tuple[list[M], list[str]]:
    """Validate a list of tables by the model their ``tag`` field names (a constraint's ``kind``, a
    market's ``protocol``). Returns the models and every problem found, each naming the item by its
    position and ``name_field``. Tables go through JSON, so the strict rules match file input."""
    parsed: list[M] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"{noun} #{i + 1} is a {type(item).__name__}, not a table")
            continue
        value = item.get(tag)
        named = item.get(name_field)
        subject = f"{noun} #{i + 1}" + (f" '{named}'" if isinstance(named, str) else "")
        if not isinstance(value, str) or value not in kinds:
            problems.append(f"{subject} has {tag} {value!r}{unknown}: use one of {sorted(kinds)}")
            continue
        try:
            parsed.append(kinds[value].model_validate_json(json.dumps(item, default=str)))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                msg = str(err["msg"]).removeprefix("Value error, ")
                where = f"field '{field}': " if field else ""
                problems.append(f"{subject} ({value}): {where}{msg}")
    return parsed, problems


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _format_error(err: Mapping[str, Any], describe: Describe | None) -> list[str]:
    loc: tuple[int | str, ...] = tuple(err.get("loc", ()))
    subject = describe(loc) if describe else ""
    field = ".".join(str(p) for p in loc)
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    where = f"{subject}: " if subject else ""
    got = err.get("input")
    shown = ""
    if err.get("type") not in {"missing", "value_error"} and not isinstance(got, dict | list):
        shown = f" (got {got!r})"
    if "\n" in msg:  # a model validator reporting several problems, each already naming its subject
        return msg.split("\n")
    return [f"{where}field '{field}': {msg}{shown}" if field else f"{where}{msg}{shown}"]


def subject_in_list(
    raw: Any, key: str, noun: str, id_field: str = "id"
) -> Callable[[Sequence[int | str]], str]:
    """A ``describe`` function that names items of list ``raw[key]`` by their id field."""

    def describe(loc: Sequence[int | str]) -> str:
        if len(loc) >= 2 and loc[0] == key and isinstance(loc[1], int):
            items = raw.get(key) if isinstance(raw, Mapping) else None
            if isinstance(items, list) and 0 <= loc[1] < len(items) and isinstance(items[loc[1]], Mapping):
                ident = items[loc[1]].get(id_field)
                if isinstance(ident, str):
                    return f"{noun} '{ident}'"
            return f"{noun} #{loc[1] + 1}"
        return ""

    return describe
