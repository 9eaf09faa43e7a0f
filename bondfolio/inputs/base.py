"""Shared pieces of the input models: the strict base model, unit-carrying aliases, arrays, loading.

Every input model derives from :class:`StrictModel`: unknown fields are errors, numbers must be finite,
strings are not coerced to numbers, and models are frozen once built. Loading goes through JSON
(``model_validate_json``) so files, strings and dicts are validated by the same rules.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np
from eth_hash.auto import keccak
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import from_json

from bondfolio.errors import InputError
from bondfolio.inputs.jsontext import dumps, guards_pass

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
    "canonical_object",
    "checksum_address",
    "collector_paused",
    "parse_address",
    "read_document",
    "sha256_hex",
    "validate_document",
    "validate_json_source",
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
    every sha256 over it) of a document that does not use them is what it was before they existed.

    Each named field gets pydantic's ``exclude_if`` when the class is made, so the serializer skips it in
    Rust (a model serializer wrapping every instance in Python cost as much as the rest of the dump)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.__pydantic_fields__
        unset = [name for name in cls.omit_when_none if fields[name].exclude_if is not _is_none]
        for name in unset:
            fields[name].exclude_if = _is_none
        if unset:
            cls.model_rebuild(force=True, raise_errors=False)
        if cls.omit_when_none and not cls.__pydantic_complete__:  # a later build would drop exclude_if
            raise TypeError(f"{cls.__name__} refers to a type not defined yet: an OmitUnset model is built when "
                            "it is defined, so define the types it refers to first")


def _is_none(value: Any) -> bool:
    return value is None


def checksum_address(value: str, what: str = "address") -> str:
    """``value`` as a checksummed address; ``ValueError`` unless it is 0x + 40 hex digits."""
    if not isinstance(value, str) or not re.match(r"^0x[0-9a-fA-F]{40}$", value):
        raise ValueError(f"{what} {value!r} is not a 0x-prefixed 20-byte hex address")
    lower = value[2:].lower()
    # EIP-55: a hex letter is upper case where the keccak of the lower-case hex has a nibble >= 8
    digest = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest[:40], strict=True))


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
            odd = _non_number(value, ())
            if odd is not None:
                at, item = odd
                raise ValueError(f"entry {at} is {item!r} ({type(item).__name__}): every entry must be a number, "
                                 "not text or a boolean")
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


_NUMBER_TYPES = frozenset({int, float})


def _non_number(value: Any, where: tuple[int, ...]) -> tuple[tuple[int, ...], Any] | None:
    """The first entry of nested lists that is not an int or float (booleans are not numbers here)."""
    if not where and isinstance(value, list) and all(isinstance(row, list) for row in value):
        # the common case, a list of rows of numbers: one flat pass over the entries' exact types
        if set(map(type, chain.from_iterable(value))) <= _NUMBER_TYPES:
            return None
    elif not where and isinstance(value, list) and set(map(type, value)) <= _NUMBER_TYPES:
        return None
    if isinstance(value, list | tuple):
        for k, item in enumerate(value):
            found = _non_number(item, (*where, k))
            if found is not None:
                return found
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return where, value
    return None


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


def canonical_json(data: Any, *, finite: bool = False) -> str:
    """Canonical JSON text: sorted keys, no spaces, shortest float repr, UTF-8 kept as is.

    The same data always gives the same text, so hashes over it identify inputs across machines. The
    text is ``json.dumps``'s (``sort_keys``, separators ``,`` and ``:``, ``ensure_ascii=False``).

    Parameters
    ----------
    data
        JSON data.
    finite
        The caller knows ``data`` holds no NaN or infinity, as in a model's JSON-mode dump (pydantic
        writes them as null), so the Rust encoder may write the same text
        (:func:`~bondfolio.inputs.jsontext.dumps`), several times faster. Otherwise ``json.dumps``
        writes it and refuses non-finite numbers with ``ValueError``.
    """
    if finite:
        text = dumps(data, sort_keys=True)
        if text is not None:
            return text
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_object(members: Mapping[str, str]) -> str:
    """The canonical JSON text of an object from its members' canonical texts: what
    :func:`canonical_json` writes for ``{key: value}`` when ``members[key]`` is the value's text, so a
    text already made (an input's, for its own sha256) is not made again."""
    return "{" + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{members[key]}" for key in sorted(members)) + "}"


def sha256_hex(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


M = TypeVar("M", bound=BaseModel)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class JsonDocument(dict[str, Any]):
    """A parsed JSON object that keeps its text, so validation parses that text once, in pydantic's
    own parser, instead of writing the data back to JSON first. Any change to the object forgets the
    text (validation then writes the changed data back, as for any mapping)."""

    text: str = ""

    def _changed(self) -> None:
        self.text = ""

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._changed()
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._changed()
        super().clear()


#: Deepest bracket nesting a document may have: real documents stay within a dozen levels; the parsers
#: would recurse without bound beyond what the interpreter allows.
MAX_DEPTH = 64


def _depth(text: str) -> int:
    """Deepest nesting of ``[`` and ``{`` in ``text`` (brackets inside strings counted too: a document
    would need thousands of unbalanced ones in its strings to trip the guard), in one numpy pass."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if not data.size:
        return 0
    step = ((data == 91) | (data == 123)).astype(np.int32) - ((data == 93) | (data == 125)).astype(np.int32)
    return int(np.max(np.cumsum(step)))


def parse_text(text: str, label: str, toml: bool = False) -> Any:
    """JSON (or TOML) text to Python data, refusing what would be silently misread: duplicate keys
    (the last would win), nesting deeper than the parsers allow (``RecursionError``), and a top level
    that is not an object (a JSON string holding a document is not the document). NaN and Infinity
    tokens are read and rejected by validation, which names the field and id."""
    if not toml:
        plain = _plain_json_object(text)
        if plain is not None:
            document = JsonDocument(plain)
            document.text = text
            return document
    if _depth(text) > MAX_DEPTH:
        raise InputError(f"{label} nests deeper than {MAX_DEPTH} levels: no bondfolio document does; check the file")
    try:
        data = tomllib.loads(text) if toml else json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        raise InputError(f"{label} gives the key '{exc.key}' twice in one object: keep one (the last would "
                         "silently win)") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label} is not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{label} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{label} nests deeper than the parser allows (no bondfolio document nests more than a "
                         "few levels): check the file") from None
    if not isinstance(data, dict):
        kind = "a string" if isinstance(data, str) else type(data).__name__
        raise InputError(f"{label} holds {kind} at its top level, not an object: a document is a JSON object "
                         "(or a TOML table), not text that holds one")
    if not toml:
        data = JsonDocument(data)
        data.text = text
    return data


def _plain_json_object(text: str) -> dict[str, Any] | None:
    """``text`` parsed by pydantic's JSON parser (jiter: the numbers, strings and NaN tokens ``json.loads``
    reads, to the same values, several times faster) when it is an object that
    :func:`~bondfolio.inputs.jsontext.guards_pass` proves free of repeated keys and deep nesting;
    ``None`` otherwise, and the careful path decides (and names any problem)."""
    if not text.lstrip(" \t\r\n").startswith("{"):
        return None
    try:
        if not guards_pass(text.encode("utf-8"), MAX_DEPTH):
            return None
        with collector_paused():
            data = from_json(text)
    except (UnicodeEncodeError, ValueError):  # lone surrogates; text that is not JSON
        return None
    return data if isinstance(data, dict) else None


def read_text_file(path: Path) -> str:
    """A file's UTF-8 text, or an :class:`InputError` naming the file and what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"file '{path}' does not exist: check the path") from None
    except IsADirectoryError:
        raise InputError(f"'{path}' is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"file '{path}' cannot be read: {exc.strerror}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"file '{path}' is UTF-16 text: save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"file '{path}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                         "save it as UTF-8") from None
    if "\x00" in text:
        raise InputError(f"file '{path}' holds NUL bytes: it is binary, not a text document")
    return text.removeprefix("\ufeff")


def read_document(path: str | Path) -> Any:
    """Read a JSON or TOML file (by extension) into Python data, with errors naming the file (see
    :func:`parse_text` for what is refused)."""
    path = Path(path)
    text = read_text_file(path)
    return parse_text(text, f"file '{path}'", toml=path.suffix.lower() == ".toml")


def read_source(source: str | Path | Mapping[str, Any], noun: str) -> tuple[Any, str]:
    """Python data and a label for messages, from a file path, JSON text, TOML text or a mapping.

    A string is JSON text when it starts with ``{``; TOML text when it spans lines or starts with ``[``
    (a table) and is not JSON; otherwise a file path (JSON, or TOML by its ``.toml`` extension)."""
    if isinstance(source, Path):
        return read_document(source), f"{noun} '{source}'"
    if isinstance(source, str):
        text = source.lstrip()
        if text.startswith(("{", '"')):
            return parse_text(source, noun), noun
        if "\n" in source or text.startswith("["):
            if text.startswith("["):
                try:
                    json.loads(source)
                except (json.JSONDecodeError, RecursionError):
                    pass
                else:
                    return parse_text(source, noun), noun  # a JSON array: refused, named
            return parse_text(source, noun, toml=True), noun
        return read_document(source), f"{noun} '{source}'"
    return source, noun


def _json_object_text(source: Any) -> str | None:
    """The JSON text ``source`` is or names, when :func:`read_source` would read it as JSON and it holds
    an object: JSON text starting with ``{``, or a path to a file that is not ``.toml``. ``None`` for
    anything else (TOML, a mapping, a model). A file that cannot be read raises its InputError here."""
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    elif isinstance(source, Path | str) and not (isinstance(source, str) and (
            "\n" in source or source.lstrip().startswith(("[", '"')))):
        path = Path(source)
        if path.suffix.lower() == ".toml":
            return None
        text = read_text_file(path)
    else:
        return None
    return text if text.lstrip(" \t\r\n").startswith("{") else None


def validate_json_source(model: type[M], source: Any) -> M | None:
    """``source`` (JSON text or a JSON file's path) validated as ``model`` by one pass of pydantic's
    parser, when :func:`~bondfolio.inputs.jsontext.guards_pass` proves the text free of what
    :func:`parse_text` refuses (repeated keys, deep nesting) without parsing it; ``None`` when the
    source is not JSON object text, the scan cannot prove it, or validation fails. The caller then takes
    :func:`read_source` and :func:`validate_document`, whose messages name every problem."""
    text = _json_object_text(source)
    if text is None:
        return None
    try:
        if not guards_pass(text.encode("utf-8"), MAX_DEPTH):
            return None
        with collector_paused():
            return model.model_validate_json(text)
    except (UnicodeEncodeError, ValidationError):  # lone surrogates in a string; a problem to name
        return None


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (unless it is paused already).

    Validating a large document allocates hundreds of thousands of container objects (models, their
    dicts, lists of numbers), none of them in a reference cycle; each burst of allocations would start a
    collection that walks every live object, which at 10,000 opportunities costs about as much as the
    validation itself. Reference counting still frees everything as usual.

    On leaving the block, the objects the block made that are still alive (the validated document: at
    10,000 opportunities 40,000 models, dicts, sets and tuples) go straight to the collector's oldest
    generation (``gc.freeze`` then ``gc.unfreeze``, two list splices), where the first young collection
    after the block would otherwise put them by walking them (30 ms at that size), and a second walk
    later. Everything young at that moment is promoted alike (a cycle among it is found by the next full
    collection instead). Skipped when the process has frozen objects of its own (``gc.freeze`` before a
    fork), which ``gc.unfreeze`` would release."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


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
            text = data.decode("utf-8", errors="strict") if isinstance(data, bytes) else data
            return model.model_validate_json(parse_text(text, source).text)
        if isinstance(data, JsonDocument) and data.text:
            return model.model_validate_json(data.text)  # the file's own text, parsed once more by pydantic
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
