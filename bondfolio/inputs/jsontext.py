"""JSON text at the speed of the data: the loader's guards proven on the bytes without a parse, and an
encoder that writes :func:`json.dumps`'s exact text from Rust.

The careful loader (:func:`~bondfolio.inputs.base.parse_text`) refuses documents that would be
silently misread: an object that repeats a key (the last would win) and nesting deeper than the
parsers allow. It finds them with a parse of its own (``json.loads`` with ``object_pairs_hook``), then
pydantic parses the text again to validate it. :func:`guards_pass` proves the same with a few
vectorized passes (numpy) over the document's bytes, so a large document (10,000 opportunities, a
factor model of 200,000 numbers) goes to pydantic's parser once. It answers ``True`` only when it is
sure; anything it cannot decide (a key written with escapes, text that is not JSON) is ``False``, and
the caller takes the careful path, which names the problem.

Python's float ``repr`` took most of every canonical pass (the text every sha256 is taken over).
:func:`dumps` encodes with orjson instead and rewrites orjson's two number spellings that differ from
``repr`` (``0.00005`` for ``5e-05``, ``1e-7`` for ``1e-07``), outside strings only, so the text is
``json.dumps``'s byte for byte. It returns ``None`` for data orjson cannot encode exactly (integers
beyond 64 bits, keys that are not strings, strings with lone surrogates, types JSON has no form for),
and the caller uses ``json.dumps``. orjson writes NaN and infinities as ``null`` where
``json.dumps(allow_nan=False)`` refuses them, so :func:`dumps` is for data known to be finite, such as a
model's JSON-mode dump (pydantic writes non-finite floats as ``null`` itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

__all__ = ["dumps", "guards_pass"]

_QUOTE, _BACKSLASH, _COLON = 0x22, 0x5C, 0x3A
_MINUS, _DOT, _ZERO, _E = 0x2D, 0x2E, 0x30, 0x65

#: Whitespace the scan walks after a string to see whether a colon follows (a key) before it gives up (and
#: says "not sure"): enough for a line break and the indent of 64 levels at two spaces each.
_MAX_GAP = 160

#: ``_BYTE_MASKS[k]`` keeps the low ``k`` bytes of a little-endian 64-bit word.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


# ---------------------------------------------------------------------------------------------- keys
def _unescaped_quotes(data: bytes, a: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close strings: a quote after an odd run of backslashes is
    part of a string (``\\"``), after an even run it closes one (``\\\\"``). ``scratch``: a bool array
    the size of ``a`` to work in."""
    quotes = np.flatnonzero(np.equal(a, _QUOTE, out=scratch))
    if b"\\" not in data:
        return quotes
    after = quotes[(quotes > 0) & (a[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    if not after.size:
        return quotes
    escaped = []
    for q in after.tolist():
        start = q - 1
        while start >= 0 and data[start] == _BACKSLASH:
            start -= 1
        if (q - 1 - start) % 2:
            escaped.append(q)
    return np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype), assume_unique=True) if escaped else quotes


def guards_pass(data: bytes, max_depth: int) -> bool:
    """Whether ``data``, a JSON document whose top level is an object, is proven free of what the careful
    loader refuses: an object that repeats a key, nesting deeper than ``max_depth`` brackets.

    ``True`` is a proof for valid JSON; ``False`` means a repeated key, deep nesting, or that the scan
    cannot tell (a key written with escapes, unbalanced quotes, text that is not JSON). Keys are compared
    by their UTF-8 bytes, which for keys without escapes is comparing the strings.
    """
    a = np.frombuffer(data, dtype=np.uint8)
    n = a.size
    work = np.empty(n, dtype=np.uint8)  # one buffer for the passes over every byte (fresh ones cost more)
    quotes = _unescaped_quotes(data, a, work.view(bool))
    if quotes.size % 2:
        return False

    # brackets and braces outside strings: b | 0x20 folds '[' ']' onto '{' '}' (0x7b, 0x7d), and
    # (folded - 0x7b) & 0xfd is zero for those two alone (uint8 arithmetic wraps)
    np.bitwise_or(a, 0x20, out=work)
    np.subtract(work, 0x7B, out=work)
    np.bitwise_and(work, 0xFD, out=work)
    marks = np.flatnonzero(np.equal(work, 0, out=work.view(bool)))
    quotes_before = np.searchsorted(quotes, marks)
    outside = (quotes_before & 1) == 0
    marks, quotes_before = marks[outside], quotes_before[outside]
    opening = (a[marks] & 0x06) == 0x02  # '[' or '{'
    level = np.cumsum(np.where(opening, 1, -1))
    if not level.size or level.min() < 0 or level.max() > max_depth:
        return False

    # a string is a key when its closing quote is followed, after whitespace, by a colon
    closing = quotes[1::2]
    follow = np.minimum(closing + 1, n - 1)
    gap = np.flatnonzero(a[follow] <= 0x20)  # JSON's whitespace (and bytes no valid text has there)
    for _ in range(_MAX_GAP):
        if not gap.size:
            break
        follow[gap] = np.minimum(follow[gap] + 1, n - 1)
        gap = gap[a[follow[gap]] <= 0x20]
    else:
        return False
    keys = np.flatnonzero(a[follow] == _COLON)  # the k-th string is quotes[2k] .. quotes[2k + 1]
    if not keys.size:
        return True
    start, end = quotes[2 * keys] + 1, closing[keys]
    if b"\\" in data:
        backslashes = np.flatnonzero(a == _BACKSLASH)
        if (np.searchsorted(backslashes, end) > np.searchsorted(backslashes, start)).any():
            return False  # a key written with escapes: the careful path decodes it

    # the object each key belongs to: the innermost '{' open before it. After each brace the innermost
    # open object is the brace's own (an opening brace) or the one it closes into (the last opening
    # brace one level up, for a closing brace); a key belongs to the innermost after the last brace
    brace = (a[marks] & 0x20) != 0
    braces, quotes_before = marks[brace], quotes_before[brace]
    step = np.where(opening[brace], 1, -1)
    depth = np.cumsum(step)
    opens = np.flatnonzero(step == 1)
    stride = np.int64(n + 1)
    rank = depth[opens] * stride + braces[opens]
    by_rank = np.argsort(rank)
    inner = np.searchsorted(rank[by_rank], depth * stride + braces, side="right") - 1
    current = np.where(inner >= 0, by_rank[np.maximum(inner, 0)], -1)
    # the last brace before each key's opening quote (quotes[2k]): the last with at most 2k quotes before it
    before = np.searchsorted(quotes_before, 2 * keys, side="right") - 1
    if (before < 0).any():
        return False
    owner = current[before]

    # each key as (owner, length, first 8 bytes, last 8 bytes) mixed into one 64-bit value: equal keys of
    # one object give equal values; equal values (a repeat, or keys alike at both ends) are compared exactly
    length = end - start
    buffer = data if int(start[-1]) + 8 <= n else data + bytes(8)  # a whole word past the last key's start
    words = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))
    mix = owner.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ length.astype(np.uint64)
    mix ^= (words[start] & _BYTE_MASKS[np.minimum(length, 8)]) * np.uint64(0xFF51AFD7ED558CCD)
    longer = length > 8
    if longer.any():
        mix ^= np.where(longer, words[np.maximum(end - 8, start)], 0) * np.uint64(0xC4CEB9FE1A85EC53)
    ranked = np.sort(mix)
    if not (ranked[1:] == ranked[:-1]).any():
        return True
    order = np.argsort(mix)
    ranked = mix[order]
    same = np.flatnonzero(ranked[1:] == ranked[:-1])
    seen: set[tuple[int, bytes]] = set()
    for i in np.unique(np.concatenate([order[same], order[same + 1]])).tolist():
        key = (int(owner[i]), data[int(start[i]):int(end[i])])
        if key in seen:
            return False
        seen.add(key)
    return True


# ---------------------------------------------------------------------------------------------- text
def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON data")


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(data: Any, *, sort_keys: bool = False, indent: int | None = None, python_floats: bool = True,
          newline: bool = False) -> str | None:
    """``json.dumps(data, sort_keys=sort_keys, indent=indent, ensure_ascii=False)`` with the separators
    json.dumps picks (``","`` and ``":"`` compact; ``","`` and ``": "`` indented), encoded by orjson; or
    ``None`` when orjson cannot give that exact text (the caller uses ``json.dumps``).

    With ``python_floats`` (the default) numbers are spelled as Python's ``repr`` spells them, so the
    text is json.dumps's byte for byte; without it, orjson's shortest spellings (the same numbers) are
    kept. ``newline`` ends the text with one. NaN and infinities become ``null``: pass finite data only
    (see the module docstring).
    """
    if indent not in (None, 2) or not isinstance(data, dict | list | tuple):
        return None
    option = _OPTIONS | (orjson.OPT_SORT_KEYS if sort_keys else 0) | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        out = orjson.dumps(data, default=_refuse, option=option | (orjson.OPT_APPEND_NEWLINE if newline else 0))
    except (orjson.JSONEncodeError, TypeError):
        return None
    if python_floats:
        out = _python_floats(out)
    return out.decode("utf-8")


def _python_floats(out: bytes) -> bytes:
    """orjson's number spellings that differ from Python's ``repr``, rewritten outside strings: a value in
    [1e-5, 1e-4) is ``0.0000d...`` for orjson and ``d...e-05`` for Python; a one-digit negative exponent
    is ``e-7`` for orjson and ``e-07`` for Python. Every other finite float is spelled alike."""
    if b"e-" not in out and b".0000" not in out:
        return out
    a = np.frombuffer(out, dtype=np.uint8)
    last = a.size - 1  # ``out`` is an array or an object: its last byte ']', '}' or a newline, never a digit

    def at(i: np.ndarray) -> np.ndarray:
        return a[np.clip(i, 0, last)]

    def digit(c: np.ndarray, low: int = _ZERO) -> np.ndarray:
        return (c >= low) & (c <= 0x39)

    # the byte pairs "e-" and ".0", read as 16-bit words at even and at odd offsets (half the passes)
    hits = []
    for offset in (0, 1):
        pairs = np.frombuffer(out, dtype="<u2", count=(a.size - offset) // 2, offset=offset)
        hits.append(2 * np.flatnonzero((pairs == (_MINUS << 8 | _E)) | (pairs == (_ZERO << 8 | _DOT))) + offset)
    pair = np.sort(np.concatenate(hits))
    # "<digit>e-<1-9><not a digit>": a '0' goes in before the exponent's digit
    minus = pair[a[pair] == _E] + 1
    minus = minus[digit(at(minus + 1), 0x31) & ~digit(at(minus + 2)) & digit(at(minus - 2))]
    # "<not a digit>0.0000<1-9>...": the leading '0' starts a token to respell
    dot = pair[a[pair] == _DOT]
    dot = dot[(at(dot - 1) == _ZERO) & ~digit(at(dot - 2)) & (at(dot + 2) == _ZERO) & (at(dot + 3) == _ZERO)
              & (at(dot + 4) == _ZERO) & digit(at(dot + 5), 0x31)]
    if not minus.size and not dot.size:
        return out
    quotes = _unescaped_quotes(out, a, np.empty(a.size, dtype=bool))
    minus = minus[(np.searchsorted(quotes, minus) & 1) == 0]
    dot = dot[(np.searchsorted(quotes, dot) & 1) == 0]

    # "0.0000dREST" -> "d.RESTe-05" (one byte fewer) or "0.0000d" -> "de-05" (two fewer), in place:
    # REST moves 5 left, the leading digit to the token's start (the point stays), "e-05" after REST, and
    # the spare bytes go
    lead = dot + 5
    ahead = digit(at(lead[:, None] + np.arange(1, 18)))  # at most 17 significant digits
    stop = lead + 1 + np.argmin(ahead, axis=1)  # the first byte after the token
    rest = stop - lead - 1
    text = a.copy()
    src = np.repeat(lead + 1 - np.cumsum(rest) + rest, rest) + np.arange(int(rest.sum()))
    text[src - 5] = a[src]
    text[dot - 1] = a[lead]
    suffix = np.where(rest > 0, stop - 5, stop - 6)
    for k, byte in enumerate(b"e-05"):
        text[suffix + k] = byte
    spare = np.concatenate([stop - 1, stop[rest == 0] - 2])
    text = np.delete(text, spare)
    # "<digit>e-<1-9>": a '0' goes in before the exponent's digit (after the deletions before it)
    spare.sort()
    text = np.insert(text, minus + 1 - np.searchsorted(spare, minus + 1), _ZERO)
    return text.tobytes()
