"""JSON text at the speed of the data: the loader's guards proven on the bytes, without a parse.

The careful loader (:func:`~bondfolio.inputs.base.parse_text`) refuses documents that would be
silently misread: an object that repeats a key (the last would win) and nesting deeper than the
parsers allow. It finds them with a parse of its own (``json.loads`` with ``object_pairs_hook``), then
pydantic parses the text again to validate it. :func:`guards_pass` proves the same with a few
vectorized passes (numpy) over the document's bytes, so a large document (10,000 opportunities, a
factor model of 200,000 numbers) goes to pydantic's parser once. It answers ``True`` only when it is
sure; anything it cannot decide (a key written with escapes, text that is not JSON) is ``False``, and
the caller takes the careful path, which names the problem.
"""

from __future__ import annotations

import numpy as np

__all__ = ["guards_pass"]

_QUOTE, _BACKSLASH, _COLON = 0x22, 0x5C, 0x3A

#: Whitespace a JSON key may have before its colon before the scan gives up (and says "not sure").
_MAX_GAP = 8

#: ``_BYTE_MASKS[k]`` keeps the low ``k`` bytes of a little-endian 64-bit word.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


# ---------------------------------------------------------------------------------------------- keys
def _unescaped_quotes(data: bytes, a: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close strings: a quote after an odd run of backslashes is
    part of a string (``\\"``), after an even run it closes one (``\\\\"``)."""
    quotes = np.flatnonzero(a == _QUOTE)
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
    quotes = _unescaped_quotes(data, a)
    if quotes.size % 2:
        return False

    # brackets and braces outside strings: b | 0x20 folds '[' ']' onto '{' '}' (0x7b, 0x7d), and
    # (folded - 0x7b) & 0xfd is zero for those two alone (uint8 arithmetic wraps)
    marks = np.flatnonzero((((a | 0x20) - 0x7B) & 0xFD) == 0)
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
    gap = np.arange(follow.size)
    for _ in range(_MAX_GAP):
        c = a[follow[gap]]
        gap = gap[(c == 0x20) | (c == 0x0A) | (c == 0x0D) | (c == 0x09)]
        if not gap.size:
            break
        follow[gap] = np.minimum(follow[gap] + 1, n - 1)
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
    # braces before each key's opening quote, counted through the quotes: quotes_before says how many
    # quotes precede each brace
    before = np.cumsum(np.bincount(quotes_before, minlength=quotes.size + 1))[2 * keys] - 1
    if (before < 0).any():
        return False
    owner = current[before]

    # each key as (owner, length, first 24 bytes, last 8 bytes) mixed into one 64-bit value: equal keys
    # of one object give equal values; equal values are then compared exactly
    length = end - start
    buffer = data if int(start[-1]) + 24 <= n else data + bytes(32)  # whole words past the last key
    words = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))
    mix = owner.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ length.astype(np.uint64)
    for at, valid, odd in ((start, length, 0xFF51AFD7ED558CCD), (start + 8, length - 8, 0xC4CEB9FE1A85EC53),
                           (start + 16, length - 16, 0x100000001B3),
                           (np.maximum(end - 8, start), np.where(length > 24, 8, 0), 0xD6E8FEB86659FD93)):
        if int(valid.max()) <= 0:
            continue
        mix ^= (words[at] & _BYTE_MASKS[np.clip(valid, 0, 8)]) * np.uint64(odd)
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
