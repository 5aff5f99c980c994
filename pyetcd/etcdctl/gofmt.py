"""Go standard-library behaviours etcdctl's output and errors depend on: strconv, time, tabwriter."""
from __future__ import annotations

import math
import re

_BASES = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}


class GoError(ValueError):
    """An error whose str() is the exact Go error text."""


def parse_int(s: str, base: int = 10, bits: int = 64) -> int:
    """strconv.ParseInt, with Go's error texts."""
    def fail(why: str) -> GoError:
        return GoError(f'strconv.ParseInt: parsing "{go_quote_str(s)}": {why}')

    body = s
    neg = False
    if body[:1] in ("+", "-"):
        neg, body = body[0] == "-", body[1:]
    b = base
    if base == 0:
        b = 10
        if body[:2] in _BASES:
            b, body = _BASES[body[:2]], body[2:]
        elif body[:1] == "0" and len(body) > 1:
            b, body = 8, body[1:]
        if "_" in body:
            if body.startswith("_") or body.endswith("_") or "__" in body:
                raise fail("invalid syntax")
            body = body.replace("_", "")
    if not body or not all(ch.isascii() and ch.isalnum() for ch in body):
        raise fail("invalid syntax")
    try:
        value = int(body, b)
    except ValueError:
        raise fail("invalid syntax") from None
    value = -value if neg else value
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise fail("value out of range")
    return value


def parse_uint(s: str, base: int = 16) -> int:
    """strconv.ParseUint(s, base, 64) for a fixed base (no sign, no prefix, no underscores)."""
    def fail(why: str) -> GoError:
        return GoError(f'strconv.ParseUint: parsing "{go_quote_str(s)}": {why}')

    try:
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
        if not s or not all(ch.lower() in digits for ch in s):
            raise ValueError
        value = int(s, base)
    except ValueError:
        raise fail("invalid syntax") from None
    if value >= 1 << 64:
        raise fail("value out of range")
    return value


def duration_string(seconds: float) -> str:
    """time.Duration.String(): 4.843957ms, 1.5s, 2m3.000000001s, 0s."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000_000:
        unit, scale = ("\u00b5s", 1000) if ns < 1_000_000 else ("ms", 1_000_000)
        return sign + _decimal(ns, scale) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: int, scale: int) -> str:
    whole, frac = divmod(value, scale)
    digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def humanize_bytes(n: int) -> str:
    """go-humanize's Bytes (SI units): 20 kB, 1.2 MB, 512 B."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    exp = int(math.floor(math.log(n) / math.log(1000)))
    val = math.floor(n / 1000 ** exp * 10 + 0.5) / 10
    return f"{val:.0f} {units[exp]}" if val >= 10 else f"{val:.1f} {units[exp]}"


def parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise GoError(f'strconv.ParseBool: parsing "{go_quote_str(s)}": invalid syntax')


_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s: str) -> float:
    """time.ParseDuration, in seconds."""
    orig = f'"{go_quote_str(s)}"'
    rest = s
    neg = False
    if rest[:1] in ("+", "-"):
        neg, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise GoError("time: invalid duration " + orig)
    total = 0.0
    while rest:
        m = re.match(r"(\d*)(\.\d*)?", rest)
        if not m.group(1) and (m.group(2) or ".") == ".":
            raise GoError("time: invalid duration " + orig)
        number = float((m.group(1) or "0") + (m.group(2) or ""))
        rest = rest[m.end():]
        u = re.match(r"[^0-9.]*", rest).group(0)
        if not u:
            raise GoError("time: missing unit in duration " + orig)
        if u not in _UNITS:
            raise GoError(f'time: unknown unit "{go_quote_str(u)}" in duration {orig}')
        total += number * _UNITS[u]
        rest = rest[len(u):]
    return -total if neg else total


def go_quote_str(s: str) -> str:
    """The inside of Go's %q for a (valid UTF-8) str."""
    return go_quote(s.encode("utf-8", "surrogateescape"))[1:-1]


def go_quote(data: bytes) -> str:
    """strconv.Quote (fmt %q) of a byte string: printable runes kept, the rest escaped."""
    out = ['"']
    i = 0
    while i < len(data):
        b = data[i]
        if b < 0x80:
            ch, size = chr(b), 1
        else:
            ch, size = None, 1
            for n in (2, 3, 4):
                try:
                    ch = data[i:i + n].decode("utf-8")
                    size = n
                    break
                except UnicodeDecodeError:
                    continue
            if ch is None or len(ch) != 1:
                out.append(f"\\x{b:02x}")
                i += 1
                continue
        i += size
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_unquote(s: str) -> str:
    """strconv.Unquote of a double-quoted Go string literal (raises GoError('invalid syntax'))."""
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise GoError("invalid syntax")
    body = s[1:-1].encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    simple = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9,
              ord("v"): 11, ord("\\"): 92, ord('"'): 34}
    while i < len(body):
        c = body[i]
        if c == ord('"') or c == ord("\n"):
            raise GoError("invalid syntax")
        if c != ord("\\"):
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise GoError("invalid syntax")
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in b"xuU":
            n = {ord("x"): 2, ord("u"): 4, ord("U"): 8}[e]
            digits = body[i + 2:i + 2 + n].decode("latin-1")
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise GoError("invalid syntax")
            v = int(digits, 16)
            if e == ord("x"):
                out.append(v)
            else:
                if v > 0x10FFFF or 0xD800 <= v < 0xE000:
                    raise GoError("invalid syntax")
                out += chr(v).encode()
            i += 2 + n
        elif ord("0") <= e <= ord("7"):
            digits = body[i + 1:i + 4].decode("latin-1")
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise GoError("invalid syntax")
            out.append(int(digits, 8))
            i += 4
        else:
            raise GoError("invalid syntax")
    return out.decode("utf-8", "surrogateescape")


def tabwrite(text: str, minwidth: int = 1, tabwidth: int = 8, padding: int = 1) -> str:
    """text/tabwriter with padchar '\\t' (etcdctl's usage layout): tab-separated cells aligned in columns."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write(lo: int, hi: int) -> None:
        for line in lines[lo:hi]:
            parts = []
            for j, cell in enumerate(line):
                parts.append(cell)
                if j < len(widths) and j < len(line) - 1:
                    cellw = -(-widths[j] // tabwidth) * tabwidth
                    parts.append("\t" * (-(-(cellw - len(cell)) // tabwidth)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)
