"""A subset of Go's text/template for request log lines (docs/observability.md,
"Request logs").

Knative's ``logging.request-log-template`` is a Go text/template executed over
``{Request *http.Request, Response, Revision, TraceID}`` (knative/serving
``pkg/http/request_log.go``). This module parses such a template once into literal text
and compiled actions and renders it per request. What it takes:

- actions ``{{pipeline}}`` with Go's trim markers (``{{- `` and `` -}}``) and comments
  (``{{/* ... */}}``);
- operands: field chains from the data (``.Request.URL.Path``), methods without
  arguments anywhere in a chain (``.Request.UserAgent``) and with arguments at its end
  (``.Request.Header.Get "X-Id"``), string (``"..."`` and raw), integer, float and
  boolean constants, and parenthesised pipelines;
- pipelines ``a | f b``: the value of each command is the last argument of the next;
- the functions ``js``, ``html``, ``urlquery``, ``print``, ``printf`` (verbs ``%v %s %d
  %f %e %g %x %X %%`` with flags, width and precision), ``index`` and ``len``.

The fields and methods are checked against a schema (:data:`SCHEMA`) when the template
is parsed, so a typo is refused at config time with the action named; Go would accept
it and fail on every request. Control actions (``if``, ``range``, ``with``, ...) and
variables are refused. Values print as Go's ``fmt`` prints them (``%v``: floats in the
shortest form, ``[a b]`` for slices, ``map[K:[v]]`` for headers), and ``js`` escapes as
Go's ``template.JSEscapeString``.

Strings are Python ``str`` holding raw bytes as surrogate escapes where they are not
UTF-8 (``errors="surrogateescape"``), so a header's bytes come out as they came in.
Pure: no I/O, no asyncio.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus

Value = Any
Action = Callable[[Any], Value]


class TemplateError(ValueError):
    """The template is not in the supported subset; the message says where and why."""


# -- the schema: Go types of the data ------------------------------------------------------

STRING, INT, FLOAT, BOOL, STRINGS = "string", "int", "float64", "bool", "[]string"
ANY = "any"
SCHEMA: dict[str, dict[str, str]] = {
    "Input": {
        "Request": "Request",
        "Response": "Response",
        "Revision": "Revision",
        "TraceID": STRING,
    },
    "Request": {
        "Method": STRING,
        "URL": "URL",
        "Proto": STRING,
        "ProtoMajor": INT,
        "ProtoMinor": INT,
        "Header": "Header",
        "ContentLength": INT,
        "TransferEncoding": STRINGS,
        "Close": BOOL,
        "Host": STRING,
        "RemoteAddr": STRING,
        "RequestURI": STRING,
    },
    "URL": {
        "Scheme": STRING,
        "Opaque": STRING,
        "Host": STRING,
        "Path": STRING,
        "RawPath": STRING,
        "ForceQuery": BOOL,
        "RawQuery": STRING,
        "Fragment": STRING,
        "RawFragment": STRING,
    },
    "Response": {"Code": INT, "Size": INT, "Latency": FLOAT},
    "Revision": {
        "Name": STRING,
        "Namespace": STRING,
        "Service": STRING,
        "Configuration": STRING,
        "PodName": STRING,
        "PodIP": STRING,
    },
}
"""type -> field -> type (Go's ``net/http.Request`` and ``net/url.URL`` fields that a
server request has, and Knative's ``RequestLogResponse`` / ``RequestLogRevision``)."""
METHODS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "Request": {"UserAgent": ((), STRING), "Referer": ((), STRING)},
    "URL": {
        "String": ((), STRING),
        "EscapedPath": ((), STRING),
        "Hostname": ((), STRING),
        "Port": ((), STRING),
        "RequestURI": ((), STRING),
        "IsAbs": ((), BOOL),
    },
    "Header": {"Get": ((STRING,), STRING), "Values": ((STRING,), STRINGS)},
}
"""type -> method -> (argument types, result type)."""
_PRINTABLE_STRUCTS = ("Response", "Revision")
"""Structs that print as Go prints a pointer to them (``&{200 12 0.001}``)."""


# -- parsing ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?\.?[0-9_]+(?:[eE][-+]?[0-9]+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<assign>:?=)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTROL = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)
_KEYWORDS: dict[str, tuple[Any, str]] = {
    "true": (True, BOOL),
    "false": (False, BOOL),
    "nil": (None, ANY),
}
_UNSUPPORTED_FUNCS = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "call", "println", "slice"}
)
_GO_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.DOTALL)


class Template:
    """A parsed template: :meth:`parse` once, :meth:`render` per request."""

    __slots__ = ("_parts", "source")

    def __init__(self, source: str, parts: Sequence[str | Action]) -> None:
        self.source = source
        self._parts = tuple(parts)

    @classmethod
    def parse(cls, text: str, *, root: str = "Input") -> Template:
        """Parse ``text`` over data of type ``root``; raises :class:`TemplateError`."""
        parts: list[str | Action] = []
        pos = 0
        while True:
            start = text.find("{{", pos)
            if start < 0:
                if "}}" in text[pos:]:
                    raise TemplateError(f"unexpected }}}} in text {_show(text[pos:])}")
                parts.append(text[pos:])
                break
            literal = text[pos:start]
            body_start = start + 2
            if (
                text.startswith("- ", body_start)
                or text.startswith("-\t", body_start)
                or (text.startswith("-\n", body_start) or text.startswith("-\r", body_start))
            ):
                literal = literal.rstrip(" \t\r\n")
                body_start += 1
            end = _action_end(text, body_start)
            if end < 0:
                raise TemplateError(f"unclosed action starting at {_show(text[start:])}")
            body_end, after = end, end + 2
            if text[body_end - 1 : body_end] == "-" and text[body_end - 2 : body_end - 1] in (
                " ",
                "\t",
                "\r",
                "\n",
            ):
                body_end -= 1
                rest = text[after:]
                after += len(rest) - len(rest.lstrip(" \t\r\n"))
            parts.append(literal)
            body = text[body_start:body_end]
            stripped = body.strip(" \t\r\n")
            if stripped.startswith("/*"):
                if not stripped.endswith("*/"):
                    raise TemplateError(f"unclosed comment in {_show(text[start:after])}")
            else:
                parts.append(_Compiler(body, root).action())
            pos = after
        merged: list[str | Action] = []
        for part in parts:
            if isinstance(part, str):
                if not part:
                    continue
                if merged and isinstance(merged[-1], str):
                    merged[-1] += part
                    continue
            merged.append(part)
        return cls(text, merged)

    def render(self, data: Any) -> str:
        """The text for ``data``; a failure while executing (an index out of range)
        raises ``IndexError``/``KeyError``/``TypeError`` as Go's Execute returns an error."""
        out = []
        for part in self._parts:
            out.append(part if isinstance(part, str) else go_print(part(data)))
        return "".join(out)


def _action_end(text: str, pos: int) -> int:
    """Where the ``}}`` closing the action whose body starts at ``pos`` is (quotes and
    comments may hold ``}}``); -1 when none."""
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if c in "\"'`":
            close = text.find(c, i + 1) if c == "`" else _quote_end(text, i)
            if close < 0:
                return -1
            i = close + 1
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                return -1
            i = close + 2
            continue
        if text.startswith("}}", i):
            return i
        i += 1
    return -1


def _quote_end(text: str, i: int) -> int:
    q = text[i]
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            return j
        if text[j] == "\n":
            return -1
        j += 1
    return -1


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def unquote_go(literal: str) -> str:
    """A Go string literal's value (interpreted ``"..."`` or raw backquoted)."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "xuU":
            code = int(e[1:], 16)
            if e[0] == "x":
                return bytes([code]).decode("utf-8", "surrogateescape")
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise TemplateError(f"invalid escape \\{e} in {literal}")
            return chr(code)
        if e[0] in "01234567" and len(e) == 3:
            code = int(e, 8)
            if code > 255:
                raise TemplateError(f"invalid escape \\{e} in {literal}")
            return bytes([code]).decode("utf-8", "surrogateescape")
        if e in _GO_ESCAPES and e != "'":
            return _GO_ESCAPES[e]
        raise TemplateError(f"invalid escape \\{e} in {literal}")

    return _ESCAPE.sub(one, literal[1:-1])


class _Compiler:
    """Compiles one action's pipeline into a closure, checking types on the way."""

    def __init__(self, body: str, root: str) -> None:
        self.body = body
        self.root = root
        self.tokens: list[tuple[str, str]] = []
        for m in _TOKEN.finditer(body):
            kind = m.lastgroup or "other"
            if kind != "ws":
                self.tokens.append((kind, m.group()))
        self.i = 0

    def fail(self, why: str) -> TemplateError:
        return TemplateError(f"{{{{{self.body.strip()}}}}}: {why}")

    def action(self) -> Action:
        if not self.tokens:
            raise self.fail("missing value for command")
        kind, text = self.tokens[0]
        if kind == "ident" and text in _CONTROL:
            raise self.fail(
                f"{text} is not supported by zeroserve's request log templates (actions "
                f"print a value: fields like .Request.Method and the functions js, html, "
                f"urlquery, print, printf, index, len)"
            )
        fn, _ = self.pipeline(stop=None)
        return fn

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def pipeline(self, stop: str | None) -> tuple[Action, str]:
        fn, typ = self.command(None)
        while True:
            tok = self.peek()
            if tok is None:
                if stop is not None:
                    raise self.fail("unclosed left paren")
                return fn, typ
            if tok[0] == "close":
                if stop != "close":
                    raise self.fail("unexpected right paren")
                self.i += 1
                return fn, typ
            if tok[0] != "pipe":
                raise self.fail(f"unexpected {tok[1]!r} in operand")
            self.i += 1
            fn, typ = self.command((fn, typ))

    def command(self, piped: tuple[Action, str] | None) -> tuple[Action, str]:
        tok = self.peek()
        if tok is None or tok[0] in ("pipe", "close"):
            raise self.fail("missing value for command")
        if tok[0] == "ident" and tok[1] not in _KEYWORDS:
            self.i += 1
            return self.function(tok[1], self.arguments(), piped)
        if tok[0] == "field":
            self.i += 1
            names = tok[1][1:].split(".")
            base: tuple[Action, str] = (_identity, self.root)
            return self.chain(base, names, self.arguments(), piped, where=tok[1])
        operand = self.operand()
        if self.more_arguments() or piped is not None:
            raise self.fail(f"can't give argument to non-function {tok[1]}")
        return operand

    def arguments(self) -> list[tuple[Action, str]]:
        args = []
        while self.more_arguments():
            args.append(self.operand())
        return args

    def more_arguments(self) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] not in ("pipe", "close")

    def operand(self) -> tuple[Action, str]:
        tok = self.peek()
        assert tok is not None
        kind, text = tok
        self.i += 1
        if kind == "field":
            return self.chain((_identity, self.root), text[1:].split("."), [], None, where=text)
        if kind == "dot":
            return _identity, self.root
        if kind in ("string", "raw"):
            value = unquote_go(text)
            return (lambda _d, v=value: v), STRING
        if kind == "number":
            return self.number(text)
        if kind == "ident" and text in _KEYWORDS:
            constant, ctype = _KEYWORDS[text]
            return (lambda _d, v=constant: v), ctype
        if kind == "ident":
            # a function as an argument: Go calls it with no arguments
            return self.function(text, [], None)
        if kind == "open":
            fn, typ = self.pipeline(stop="close")
            nxt = self.peek()
            if nxt is not None and nxt[0] == "field":
                self.i += 1
                return self.chain((fn, typ), nxt[1][1:].split("."), [], None, where=nxt[1])
            return fn, typ
        if kind == "var":
            raise self.fail(f"variables ({text}) are not supported by zeroserve")
        if kind == "assign":
            raise self.fail("variables are not supported by zeroserve")
        if kind == "char":
            raise self.fail(f"character constants ({text}) are not supported by zeroserve")
        raise self.fail(f"unexpected {text!r} in operand")

    def number(self, text: str) -> tuple[Action, str]:
        clean = text.replace("_", "")
        try:
            if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|[0-9]+)", clean):
                ivalue = int(clean, 0) if "x" in clean.lower() else int(clean, 10)
                return (lambda _d, v=ivalue: v), INT
            fvalue = float(clean)
        except ValueError:
            raise self.fail(f"bad number syntax: {text!r}") from None
        return (lambda _d, v=fvalue: v), FLOAT

    def chain(
        self,
        base: tuple[Action, str],
        names: list[str],
        args: list[tuple[Action, str]],
        piped: tuple[Action, str] | None,
        *,
        where: str,
    ) -> tuple[Action, str]:
        fn, typ = base
        for n, name in enumerate(names):
            last = n == len(names) - 1
            fields = SCHEMA.get(typ, {})
            methods = METHODS.get(typ, {})
            if name in fields:
                fn, typ = _field(fn, name), fields[name]
                continue
            if name in methods:
                params, result = methods[name]
                given = (args + ([piped] if piped is not None else [])) if last else []
                self.check_args(f"{where}", params, given)
                fn, typ = _method(fn, name, [a for a, _ in given]), result
                if last:
                    return fn, typ
                continue
            known = sorted((*fields, *methods))
            if known:
                raise self.fail(
                    f"can't evaluate field {name} in type {typ} (it has {', '.join(known)})"
                )
            raise self.fail(f"can't evaluate field {name} in type {typ}")
        if args or piped is not None:
            raise self.fail(f"{where} is not a method but has arguments")
        return fn, typ

    def check_args(
        self, what: str, params: tuple[str, ...], given: list[tuple[Action, str]]
    ) -> None:
        if len(params) != len(given):
            raise self.fail(f"wrong number of args for {what}: want {len(params)} got {len(given)}")
        for want, (_, got) in zip(params, given, strict=True):
            if got not in (want, ANY):
                raise self.fail(f"wrong type for value; expected {want}; got {got}")

    def function(
        self, name: str, args: list[tuple[Action, str]], piped: tuple[Action, str] | None
    ) -> tuple[Action, str]:
        if piped is not None:
            args = [*args, piped]
        fns = [a for a, _ in args]
        types = [t for _, t in args]
        if name in ("js", "html", "urlquery"):
            escapes: dict[str, Callable[[str], str]] = {
                "js": js_escape,
                "html": html_escape,
                "urlquery": _query_escape,
            }
            escape = escapes[name]

            def escaper(d: Any, fns: list[Action] = fns) -> str:
                values = [f(d) for f in fns]
                text = (
                    values[0]
                    if len(values) == 1 and isinstance(values[0], str)
                    else (go_sprint(values))
                )
                return escape(text)

            return escaper, STRING
        if name == "print":
            return (lambda d, fns=fns: go_sprint([f(d) for f in fns])), STRING
        if name == "printf":
            if not args or types[0] != STRING:
                raise self.fail("printf needs a format string first")
            return (lambda d, fns=fns: go_sprintf(fns[0](d), [f(d) for f in fns[1:]])), STRING
        if name == "len":
            if len(args) != 1:
                raise self.fail(f"wrong number of args for len: want 1 got {len(args)}")
            if types[0] not in (STRING, STRINGS, "Header", ANY):
                raise self.fail(f"len of type {types[0]}")
            return (lambda d, f=fns[0]: len(f(d))), INT
        if name == "index":
            if not args:
                raise self.fail("wrong number of args for index: want at least 1 got 0")
            typ = types[0]
            for key_type in types[1:]:
                if typ == "Header" and key_type in (STRING, ANY):
                    typ = STRINGS
                elif typ == STRINGS and key_type in (INT, ANY):
                    typ = STRING
                else:
                    raise self.fail(f"can't index item of type {typ} with a {key_type}")
            return (lambda d, fns=fns: _index(fns[0](d), [f(d) for f in fns[1:]])), typ
        if name in _UNSUPPORTED_FUNCS:
            raise self.fail(
                f"function {name} is not supported by zeroserve's request log templates "
                f"(js, html, urlquery, print, printf, index and len are)"
            )
        raise self.fail(f'function "{name}" not defined')


def _identity(d: Any) -> Any:
    return d


def _field(inner: Action, name: str) -> Action:
    return lambda d: getattr(inner(d), name)


def _method(inner: Action, name: str, args: list[Action]) -> Action:
    if not args:
        return lambda d: getattr(inner(d), name)()
    return lambda d: getattr(inner(d), name)(*(a(d) for a in args))


def _index(item: Any, keys: list[Any]) -> Any:
    for key in keys:
        if isinstance(item, Header):
            item = item.values.get(key, [])  # the exact key: no canonical form, as Go's map
        else:
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise IndexError(f"index out of range: {key}")
            item = item[key]
    return item


# -- values ------------------------------------------------------------------------------------


class Header:
    """Go's ``http.Header``: canonical name -> values, in arrival order."""

    __slots__ = ("values",)

    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self.values = values

    def Get(self, key: str) -> str:  # Go's method name
        found = self.values.get(canonical_header_key(key))
        return found[0] if found else ""

    def Values(self, key: str) -> list[str]:  # Go's method name
        return list(self.values.get(canonical_header_key(key), []))

    def __len__(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        items = (f"{k}:{go_print(v)}" for k, v in sorted(self.values.items()))
        return "map[" + " ".join(items) + "]"


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


_CANONICAL: dict[str, str] = {}
"""Keys already made canonical: a request log reads the same few header names on every
request (bounded by :data:`_CANONICAL_MAX`)."""
_CANONICAL_MAX = 4096


def canonical_header_key(key: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-request-id`` -> ``X-Request-Id``;
    a key with a character outside a token is returned as it is."""
    found = _CANONICAL.get(key)
    if found is not None:
        return found
    if not key or not _TOKEN_CHARS.issuperset(key):
        found = key
    else:
        # token characters are ASCII: upper/lower change letters only
        found = "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))
    if len(_CANONICAL) < _CANONICAL_MAX:
        _CANONICAL[key] = found
    return found


def go_print(value: Value) -> str:
    """``fmt.Sprint(value)``: Go's ``%v``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def go_sprint(values: Sequence[Value]) -> str:
    """``fmt.Sprint(values...)``: a space between operands when neither is a string."""
    out = []
    for i, v in enumerate(values):
        if i > 0 and not isinstance(v, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(go_print(v))
    return "".join(out)


def go_float(x: float, verb: str = "g", prec: int = -1) -> str:
    """``strconv.FormatFloat(x, verb, prec, 64)`` for ``g`` (shortest with ``prec`` -1,
    as ``%v``), ``e`` and ``f``, with fmt's two-digit exponents."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if verb == "f":
        return f"{x:.{6 if prec < 0 else prec}f}"
    if verb == "e":
        return f"{x:.{6 if prec < 0 else prec}e}"
    if prec >= 0:
        return f"{x:.{max(prec, 1)}g}"  # Python's %g is C's, as Go's: same threshold
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    # the shortest digits that read back as x (repr's, which are Go's too)
    mantissa, _, e = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(e or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    exp = point - 1
    # strconv: %e when the exponent is < -4 or >= the precision, 6 for the shortest form
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


# -- escaping (Go's text/template funcs) -------------------------------------------------------

_JS_ASCII = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def js_escape(text: str) -> str:
    """Go's ``template.JSEscapeString``: quotes and backslashes escaped; ``< > & =``,
    control characters and non-printable runes as ``\\u`` and four hex digits
    (``\\u003C``); printable Unicode and bytes that are not UTF-8 (surrogate escapes)
    are kept."""
    out = []
    for c in text:
        o = ord(c)
        if o < 0x80:
            if c in _JS_ASCII:
                out.append(_JS_ASCII[c])
            elif o < 0x20:
                out.append(f"\\u00{o:02X}")
            else:
                out.append(c)
        elif 0xDC80 <= o <= 0xDCFF or _go_is_print(c):
            out.append(c)  # an invalid byte is written as it is; printable runes too
        else:
            out.append(f"\\u{o:04X}")
    return "".join(out)


def _go_is_print(c: str) -> bool:
    """Go's ``unicode.IsPrint``: letters, marks, numbers, punctuation, symbols, and the
    ASCII space (no other spaces)."""
    return unicodedata.category(c)[0] in "LMNPS"


def _query_escape(text: str) -> str:
    """Go's ``url.QueryEscape`` (``template.URLQueryEscaper``)."""
    return quote_plus(text, safe="", errors="surrogateescape")


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}


def html_escape(text: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return "".join(_HTML.get(c, c) for c in text)


# -- printf ------------------------------------------------------------------------------------

_VERB = re.compile(r"%([-+# 0]*)([0-9]+)?(?:\.([0-9]*))?([a-zA-Z%])")


def go_sprintf(fmt: str, args: list[Value]) -> str:
    """``fmt.Sprintf`` for the verbs ``v s d f e g x X %`` (others print Go's
    ``%!verb(type=value)``); missing and extra arguments as Go marks them."""
    out = []
    pos = 0
    n = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        p = None if prec is None else int(prec or "0")
        text = _format_one(verb, arg, p)
        if width:
            w = int(width)
            if "-" in flags:
                text = text.ljust(w)
            elif "0" in flags and verb in "dfegxX" and not isinstance(arg, str):
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign) :].rjust(w - len(sign), "0")
            else:
                text = text.rjust(w)
        if (
            "+" in flags
            and verb in "dfeg"
            and isinstance(arg, int | float)
            and not text.startswith("-")
        ):
            text = "+" + text
        out.append(text)
    out.append(fmt[pos:])
    if n < len(args):
        extra = ", ".join(f"{_go_type_name(a)}={go_print(a)}" for a in args[n:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, arg: Value, prec: int | None) -> str:
    if verb in "vs":
        text = go_print(arg)
        return text[:prec] if verb == "s" and prec is not None and isinstance(arg, str) else text
    if verb == "d" and isinstance(arg, int) and not isinstance(arg, bool):
        return str(arg)
    if verb in "xX" and isinstance(arg, int) and not isinstance(arg, bool):
        text = format(arg, "x" if verb == "x" else "X")
        return text
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode("utf-8", "surrogateescape").hex()
        return text if verb == "x" else text.upper()
    if verb in "feg" and isinstance(arg, float):
        return go_float(
            arg, verb, -1 if prec is None and verb == "g" else (6 if prec is None else prec)
        )
    return f"%!{verb}({_go_type_name(arg)}={go_print(arg)})"


def _go_type_name(v: Value) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]string"
    if isinstance(v, Header):
        return "http.Header"
    return type(v).__name__


__all__ = [
    "METHODS",
    "SCHEMA",
    "Header",
    "Template",
    "TemplateError",
    "canonical_header_key",
    "go_float",
    "go_print",
    "go_sprint",
    "go_sprintf",
    "html_escape",
    "js_escape",
    "unquote_go",
]
