"""Request JSON decoded as etcd 3.5's grpc-gateway decodes it (Go's encoding/json under
golang/protobuf's jsonpb), with Go's error texts: a client sending bad JSON, a string for a
bool or a number out of range gets the very message etcd answers.

Values are parsed here rather than by Python's json module because Go's texts depend on where
the scanner was ("after object key", "after array element"), because a body is a *stream* of
values (a watch or keep-alive body carries one request after another), and because jsonpb
works on the raw text of a value (``"ID":"12"`` is the number ``12`` re-read from the quotes).
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_WS = re.compile(r"[ \t\r\n]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_CLOSE = {"{": "}", "[": "]"}
MAX_DEPTH = 10000          # Go's scanner: the nesting it allows


class GoJsonError(Exception):
    """A body grpc-gateway refuses; the text is Go's."""


class EndOfInput(GoJsonError):
    """The input ended inside a value: Go's Decoder says "unexpected EOF", Unmarshal
    "unexpected end of JSON input"."""


class Raw:
    """A parsed value with its source text (jsonpb decodes fields from their raw text)."""

    __slots__ = ("kind", "value", "text")

    def __init__(self, kind: str, value: Any, text: str) -> None:
        self.kind = kind      # Go's word: object, array, string, number, bool, null
        self.value = value    # dict[str, Raw] | list[Raw] | str | bool | None
        self.text = text      # (empty for objects and arrays: nothing reads theirs)


def _quote_char(c: str) -> str:
    """Go's quoteChar: how the scanner names a character in its errors."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c)[1:-1] + "'" if c.isprintable() or c in "\n\r\t" else "'" + f"\\x{ord(c):02x}" + "'"


def _bad(c: str, where: str) -> GoJsonError:
    return GoJsonError(f"invalid character {_quote_char(c)} {where}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        m = _WS.match(self.text, self.pos)
        self.pos = m.end() if m else self.pos

    def peek(self) -> str:
        if self.pos >= len(self.text):
            raise EndOfInput("unexpected EOF")
        return self.text[self.pos]

    def value(self) -> Raw:
        """One value. Containers are kept on a stack of our own, not Python's: Go allows
        MAX_DEPTH levels of nesting."""
        stack: list[tuple[dict[str, Raw] | list[Raw], str]] = []   # open containers, the key awaiting its value
        while True:
            self.skip_ws()
            c = self.peek()
            if c in "{[":
                if len(stack) >= MAX_DEPTH:
                    raise _bad(c, "exceeded max depth")
                self.pos += 1
                self.skip_ws()
                container: dict[str, Raw] | list[Raw] = {} if c == "{" else []
                if self.peek() != _CLOSE[c]:
                    stack.append((container, self._key() if c == "{" else ""))
                    continue
                self.pos += 1
                item = Raw("object" if c == "{" else "array", container, "")
            else:
                item = self._scalar(c)
            while True:            # the item goes into its container; close those that end here
                if not stack:
                    return item
                container, key = stack[-1]
                if isinstance(container, dict):
                    container[key] = item
                else:
                    container.append(item)
                self.skip_ws()
                c = self.peek()
                self.pos += 1
                is_object = isinstance(container, dict)
                if c == ",":
                    if is_object:
                        stack[-1] = (container, self._key())
                    break
                if c != ("}" if is_object else "]"):
                    raise _bad(c, "after object key:value pair" if is_object else "after array element")
                stack.pop()
                item = Raw("object" if is_object else "array", container, "")

    def _scalar(self, c: str) -> Raw:
        start = self.pos
        if c == '"':
            return Raw("string", self._string(), self.text[start:self.pos])
        if c == "-" or c.isdigit() and c.isascii():
            return self._number()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if c == word[0]:
                self._literal(word)
                return Raw("null" if value is None else "bool", value, word)
        raise _bad(c, "looking for beginning of value")

    def _key(self) -> str:
        """An object's next key and its colon."""
        self.skip_ws()
        if self.peek() != '"':
            raise _bad(self.peek(), "looking for beginning of object key string")
        key = self._string()
        self.skip_ws()
        if self.peek() != ":":
            raise _bad(self.peek(), "after object key")
        self.pos += 1
        return key

    def _string(self) -> str:
        self.pos += 1
        parts = []
        escaped = False
        while True:
            m = _PLAIN.match(self.text, self.pos)
            end = m.end() if m else self.pos
            parts.append(self.text[self.pos:end])
            self.pos = end
            c = self.peek()
            self.pos += 1
            if c == '"':
                text = "".join(parts)
                # Go joins a surrogate pair written as two escapes, and replaces a lone half
                return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if escaped else text
            if c != "\\":
                raise _bad(c, "in string literal")
            e = self.peek()
            self.pos += 1
            if e in _ESCAPES:
                parts.append(_ESCAPES[e])
                continue
            if e != "u":
                raise _bad(e, "in string escape code")
            for _ in range(4):
                if self.peek() not in _HEX:
                    raise _bad(self.peek(), "in \\u hexadecimal character escape")
                self.pos += 1
            parts.append(chr(int(self.text[self.pos - 4:self.pos], 16)))
            escaped = True

    def _number(self) -> Raw:
        start = self.pos
        m = _NUMBER.match(self.text, start)
        if m is None:
            self.pos += 1
            raise _bad(self.peek(), "in numeric literal")
        end, literal = m.end(), m.group()
        # a fraction or exponent cut short ("1.", "1e+") fails on the character after it
        nxt = self.text[end:end + 1]
        if nxt == "." and "." not in literal and "e" not in literal.lower():
            self.pos = end + 1
            raise _bad(self.peek(), "after decimal point in numeric literal")
        if nxt in ("e", "E") and "e" not in literal.lower():
            self.pos = end + 1
            if self.peek() in "+-":
                self.pos += 1
            raise _bad(self.peek(), "in exponent of numeric literal")
        self.pos = end
        return Raw("number", literal, literal)

    def _literal(self, word: str) -> None:
        for expected in word:
            c = self.peek()
            if c != expected:
                raise _bad(c, f"in literal {word} (expecting {_quote_char(expected)})")
            self.pos += 1


def decode_stream(body: str) -> Iterator[Raw]:
    """The values of a body one after another, as Go's json.Decoder reads them; raises
    GoJsonError at the first that does not parse."""
    p = _Parser(body)
    while True:
        p.skip_ws()
        if p.pos >= len(body):
            return
        yield p.value()


def unmarshal(text: str) -> Raw:
    """One value and nothing after it, as Go's json.Unmarshal."""
    p = _Parser(text)
    try:
        value = p.value()
    except EndOfInput:
        raise GoJsonError("unexpected end of JSON input") from None
    p.skip_ws()
    if p.pos < len(text):
        raise _bad(text[p.pos], "after top-level value")
    return value


# ---- jsonpb: a value onto a protobuf field --------------------------------------------------

_INT_RANGE = {FieldDescriptor.CPPTYPE_INT64: ("int64", -(1 << 63), (1 << 63) - 1),
              FieldDescriptor.CPPTYPE_UINT64: ("uint64", 0, (1 << 64) - 1),
              FieldDescriptor.CPPTYPE_INT32: ("int32", -(1 << 31), (1 << 31) - 1),
              FieldDescriptor.CPPTYPE_UINT32: ("uint32", 0, (1 << 32) - 1)}


def _type_error(raw: Raw, go_type: str, with_literal: bool = False) -> GoJsonError:
    what = f"number {raw.text}" if with_literal and raw.kind == "number" else raw.kind
    return GoJsonError(f"json: cannot unmarshal {what} into Go value of type {go_type}")


def _integer(raw: Raw, go_type: str, low: int, high: int) -> int:
    if raw.kind != "number":
        raise _type_error(raw, go_type)
    if not re.fullmatch(r"-?[0-9]+", raw.text) or not low <= int(raw.text) <= high:
        raise _type_error(raw, go_type, with_literal=True)
    return int(raw.text)


def _scalar(raw: Raw, field: Any) -> Any:  # a FieldDescriptor (upb's or the Python one)
    ranged = _INT_RANGE.get(field.cpp_type)
    if ranged is not None and field.type != FieldDescriptor.TYPE_ENUM:
        if raw.kind == "string":       # jsonpb re-reads a quoted number from between its quotes
            raw = unmarshal(raw.text[1:-1])
        return _integer(raw, *ranged)
    enum = field.enum_type
    if enum is not None:
        if raw.kind == "string":
            value = enum.values_by_name.get(raw.value)
            if value is None:
                raise GoJsonError(f"unknown value {json.dumps(raw.text)} for enum {enum.full_name}")
            return value.number
        return _integer(raw, "protoreflect.EnumNumber", -(1 << 31), (1 << 31) - 1)
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw.kind != "bool":
            raise _type_error(raw, "bool")
        return raw.value
    if field.type == FieldDescriptor.TYPE_BYTES:
        if raw.kind != "string":
            raise _type_error(raw, "[]uint8")
        return go_b64decode(raw.value)
    if field.type == FieldDescriptor.TYPE_STRING:
        if raw.kind != "string":
            raise _type_error(raw, "string")
        return raw.value
    if raw.kind != "number":          # float and double: etcd's API has none, kept for completeness
        raise _type_error(raw, "float64")
    return float(raw.text)


def _object_fields(raw: Raw) -> dict[str, Raw]:
    if raw.kind != "object":
        raise _type_error(raw, "map[string]json.RawMessage")
    return raw.value


def fill(msg: Message, raw: Raw) -> None:
    """Set msg's fields from a decoded object, by proto name or JSON name; unknown names are
    ignored and nulls leave a field unset, as etcd's gateway does."""
    if raw.kind == "null":
        return
    fields = _object_fields(raw)
    for field in msg.DESCRIPTOR.fields:
        value = fields.get(field.name)
        if value is None:
            value = fields.get(field.json_name)
        if value is None or value.kind == "null":
            continue
        if field.is_repeated:
            if value.kind != "array":
                raise _type_error(value, "[]json.RawMessage")
            target = getattr(msg, field.name)
            for item in value.value:
                if field.message_type is not None:
                    fill(target.add(), item)
                else:
                    target.append(_scalar(item, field))
        elif field.message_type is not None:
            sub = getattr(msg, field.name)
            sub.SetInParent()
            fill(sub, value)
        else:
            setattr(msg, field.name, _scalar(value, field))


_B64_PLAIN = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_b64decode(text: str) -> bytes:
    """Go's base64.StdEncoding.DecodeString: padding required, CR and LF skipped anywhere,
    errors naming the byte offset Go names."""
    if _B64_PLAIN.fullmatch(text):
        return base64.b64decode(text)
    src, si, clean = text, 0, []
    while si < len(src):
        j = 0
        while j < 4:
            if si == len(src):
                if j == 0:
                    break
                raise _corrupt(si - j)
            c = src[si]
            si += 1
            if c in _B64_ALPHABET:
                clean.append(c)
                j += 1
                continue
            if c in "\r\n":
                continue
            if c != "=" or j < 2:
                raise _corrupt(si - 1)
            if j == 2:      # "==" expected; the first "=" is in
                while si < len(src) and src[si] in "\r\n":
                    si += 1
                if si == len(src):
                    raise _corrupt(len(src))
                if src[si] != "=":
                    raise _corrupt(si - 1)
                si += 1
            while si < len(src) and src[si] in "\r\n":
                si += 1
            if si < len(src):
                raise _corrupt(si)
            clean.append("=" * (4 - j))
            return base64.b64decode("".join(clean))
    return base64.b64decode("".join(clean))


def _corrupt(at: int) -> GoJsonError:
    return GoJsonError(f"illegal base64 data at input byte {at}")
