"""Request log lines (zeroserve/requestlog.py) over the Go text/template subset
(zeroserve/gotemplate.py): Knative's default template, every documented field, Go's
printing and ``js`` escaping, and templates refused at parse time."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from zeroserve.gotemplate import (
    Template,
    TemplateError,
    canonical_header_key,
    go_float,
    go_sprintf,
    js_escape,
)
from zeroserve.http.exchange import Request
from zeroserve.observability import DEFAULT_REQUEST_LOG_TEMPLATE, ObservabilityConfig
from zeroserve.requestlog import (
    LogInput,
    LogRequest,
    LogResponse,
    LogRevision,
    LogURL,
    RequestLogger,
    parse_template,
    stdout_writer,
)

REVISION = LogRevision("hello-00001", "default", "hello", "hello", "hello-00001-pod", "10.0.0.7")


class FakeConn:
    client_ip = b"10.1.2.3"
    transport = None


def request(
    target: bytes = b"/path?q=1",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    method: bytes = b"GET",
    version: str = "1.1",
    status: int = 200,
    size: int = 13,
) -> Request:
    req = Request()
    req.method, req.target, req.version = method, target, version
    for name, value in headers or []:
        req.lines.append((name.lower(), name + b": " + value + b"\r\n"))
    req.status, req.resp_size = status, size
    return req


def data(req: Request, latency: float = 0.0012) -> LogInput:
    r = LogRequest(req, "10.1.2.3:50000")
    from zeroserve.requestlog import trace_id

    return LogInput(
        r, LogResponse(req.status, req.resp_size, latency), REVISION, trace_id(r.Header)
    )


def render(template: str, req: Request | None = None, latency: float = 0.0012) -> str:
    return Template.parse(template).render(data(req or request(), latency))


def test_knatives_default_template_is_one_json_line() -> None:
    req = request(
        b"/hello?who=me",
        [
            (b"Host", b"hello.default.example.com"),
            (b"User-Agent", b"curl/8.5.0"),
            (b"Referer", b"http://a.example/"),
            (b"Content-Length", b"5"),
            (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ],
        method=b"POST",
        status=201,
        size=42,
    )
    line = parse_template(DEFAULT_REQUEST_LOG_TEMPLATE).render(data(req, 0.001234))
    assert line.endswith("}\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "httpRequest": {
            "requestMethod": "POST",
            "requestUrl": "/hello?who=me",
            "requestSize": "5",
            "status": 201,
            "responseSize": "42",
            "userAgent": "curl/8.5.0",
            "remoteIp": "10.1.2.3:50000",
            "serverIp": "10.0.0.7",
            "referer": "http://a.example/",
            "latency": "0.001234s",
            "protocol": "HTTP/1.1",
        },
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    # js escapes '=' as Go does: the raw line carries \u003D
    assert '"requestUrl": "/hello?who\\u003Dme"' in line


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Request.Method}}", "GET"),
        ("{{.Request.URL}}", "/a%20b/c?x=1&y=2"),
        ("{{.Request.URL.Path}}", "/a b/c"),
        ("{{.Request.URL.RawQuery}}", "x=1&y=2"),
        ("{{.Request.URL.RawPath}}", ""),
        ("{{.Request.URL.EscapedPath}}", "/a%20b/c"),
        ("{{.Request.URL.RequestURI}}", "/a%20b/c?x=1&y=2"),
        ("{{.Request.URL.Scheme}}|{{.Request.URL.Host}}", "|"),
        ("{{.Request.RequestURI}}", "/a%20b/c?x=1&y=2"),
        ("{{.Request.Host}}", "h.example:8080"),
        ("{{.Request.Proto}} {{.Request.ProtoMajor}}.{{.Request.ProtoMinor}}", "HTTP/1.1 1.1"),
        ("{{.Request.ContentLength}}", "0"),
        ("{{.Request.RemoteAddr}}", "10.1.2.3:50000"),
        ("{{.Request.UserAgent}}", "kube?"),
        ("{{.Request.Referer}}", ""),
        ("{{.Request.Header}}", "map[User-Agent:[kube?] X-Id:[1 2]]"),
        ('{{index .Request.Header "X-Id"}}', "[1 2]"),
        ('{{index .Request.Header "X-Id" 1}}', "2"),
        ('{{index .Request.Header "x-id"}}', "[]"),  # a map: the exact (canonical) key
        ('{{.Request.Header.Get "x-id"}}', "1"),  # Get canonicalises
        ('{{.Request.Header.Values "X-ID"}}', "[1 2]"),
        ("{{len .Request.Header}}", "2"),
        ("{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}}", "200 13 0.0012"),
        ("{{.Response}}", "&{200 13 0.0012}"),
        ("{{.Revision.Name}}/{{.Revision.Namespace}}", "hello-00001/default"),
        ("{{.Revision.Service}} {{.Revision.Configuration}}", "hello hello"),
        ("{{.Revision.PodName}} {{.Revision.PodIP}}", "hello-00001-pod 10.0.0.7"),
        ("[{{.TraceID}}]", "[]"),
        ('{{printf "%.3f" .Response.Latency}}s', "0.001s"),
        ('{{printf "%5d|%-4s|%x" .Response.Code .Request.Method .Response.Size}}', "  200|GET |d"),
        ('{{print .Response.Code .Response.Size "x" 1}}', "200 13x1"),
        ("{{.Request.Method | js}}", "GET"),
        ('{{"a<b" | html}} {{urlquery "a b&c"}}', "a&lt;b a+b%26c"),
        ("{{js .Response.Code .Response.Size}}", "200 13"),
        ("{{(.Request.URL).Path}}", "/a b/c"),
        ("{{/* a comment */}}x {{- .Request.Method -}} y", "xGETy"),
        ('{{`raw\\n`}}{{"\\u00e9\\x41\\n"}}', "raw\\né" + "A\n"),
        ("{{true}} {{1.5}} {{0x10}} {{-3}}", "true 1.5 16 -3"),
    ],
)
def test_fields_functions_and_printing(template: str, expected: str) -> None:
    req = request(
        b"/a%20b/c?x=1&y=2",
        [
            (b"Host", b"h.example:8080"),
            (b"user-agent", b"kube?"),
            (b"X-Id", b"1"),
            (b"x-id", b"2"),
        ],
    )
    assert render(template, req) == expected


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        (b"*", {"Path": "*", "String": "*"}),
        (b"/", {"Path": "/", "RawQuery": "", "String": "/"}),
        (b"/x?", {"Path": "/x", "ForceQuery": True, "String": "/x?"}),
        (b"/%7Ehome", {"Path": "/~home", "RawPath": "/%7Ehome", "EscapedPath": "/%7Ehome"}),
        (b"/a%2Fb", {"Path": "/a/b", "RawPath": "/a%2Fb", "String": "/a%2Fb"}),
        (
            b"http://h.example:81/p?q",
            {"Scheme": "http", "Host": "h.example:81", "Path": "/p", "Hostname": "h.example"},
        ),
        (b"https://[::1]:8443/", {"Hostname": "::1", "Port": "8443", "IsAbs": True}),
        (b"/bad%zz", {"Path": "/bad%zz", "String": "/bad%zz"}),
    ],
)
def test_the_url_is_gos_parse_of_the_request_target(target: bytes, fields: dict) -> None:
    url = LogURL(target.decode())
    for name, value in fields.items():
        got = getattr(url, name)
        assert (got() if callable(got) else got) == value, name


def test_the_host_is_the_one_the_app_sees() -> None:
    behind = request(b"/", [(b"Host", b"10.0.0.7:8012"), (b"K-Original-Host", b"hello.example")])
    assert LogRequest(behind, "").Host == "hello.example"
    assert LogRequest(request(b"/", [(b"Host", b"direct.example")]), "").Host == "direct.example"


def test_content_length_and_protocol_as_go_sees_them() -> None:
    chunked = request(b"/", [(b"Transfer-Encoding", b"chunked")], method=b"POST")
    chunked.chunked = True
    r = LogRequest(chunked, "")
    assert r.ContentLength == -1 and r.TransferEncoding == ["chunked"]
    h2 = LogRequest(request(version="2.0"), "")
    assert (h2.Proto, h2.ProtoMajor, h2.ProtoMinor) == ("HTTP/2.0", 2, 0)


@pytest.mark.parametrize(
    ("headers", "trace"),
    [
        ([(b"traceparent", b"00-abc-def-01")], "abc"),
        ([(b"X-B3-TraceId", b"b3id")], "b3id"),
        ([(b"traceparent", b"00-w3c-x-01"), (b"X-B3-TraceId", b"b3")], "w3c"),
        ([(b"traceparent", b"garbage")], ""),
        ([], ""),
    ],
)
def test_the_trace_id_is_w3c_then_b3(headers: list[tuple[bytes, bytes]], trace: str) -> None:
    assert render("{{.TraceID}}", request(b"/", headers)) == trace


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (0.5, "0.5"),
        (0.0012, "0.0012"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e6, "1e+06"),
        (123456789.0, "1.23456789e+08"),
        (1e21, "1e+21"),
        (5e-324, "5e-324"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_floats_print_as_gos_v(x: float, text: str) -> None:
    assert go_float(x) == text


@pytest.mark.parametrize(
    ("fmt", "args", "text"),
    [
        ("%v|%s|%d", [1.5, "a", 3], "1.5|a|3"),
        ("%.2f %e %g", [0.125, 1500.0, 0.5], "0.12 1.500000e+03 0.5"),
        ("%05d %-3d| %+d", [42, 7, 5], "00042 7  | +5"),
        ("%d", [], "%!d(MISSING)"),
        ("%d", ["x"], "%!d(string=x)"),
        ("x", [1], "x%!(EXTRA int=1)"),
        ("100%%", [], "100%"),
    ],
)
def test_printf_formats_as_go(fmt: str, args: list, text: str) -> None:
    assert go_sprintf(fmt, args) == text


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a\"b'c\\d", "a\\\"b\\'c\\\\d"),
        ("<a href=x>&", "\\u003Ca href\\u003Dx\\u003E\\u0026"),
        ("tab\tnl\n\x7f", "tab\\u0009nl\\u000A\x7f"),
        ("é漢😀", "é漢😀"),
        ("\u00a0\u2028\u200b", "\\u00A0\\u2028\\u200B"),
        (
            b"\xff\xfe".decode("utf-8", "surrogateescape"),
            b"\xff\xfe".decode("utf-8", "surrogateescape"),
        ),
    ],
)
def test_js_escapes_as_gos_jsescapestring(text: str, escaped: str) -> None:
    assert js_escape(text) == escaped


_JS_UNESCAPE = re.compile(r"\\(u[0-9A-F]{4}|.)")


def _js_unescape(text: str) -> str:
    return _JS_UNESCAPE.sub(
        lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u" else m.group(1), text
    )


header_values = st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)


@given(header_values)
def test_js_output_is_safe_in_a_quoted_string_and_reads_back(value: bytes) -> None:
    text = value.strip().decode("utf-8", "surrogateescape")
    # Go writes a non-printable rune above U+FFFF as \u and 5-6 digits, which no reader
    # can tell from a \u escape (four hex digits) and more text: not read back here
    assume(not any(ord(c) > 0xFFFF and unicodedata.category(c)[0] not in "LMNPS" for c in text))
    req = request(b"/", [(b"User-Agent", value)])
    out = render('"{{js .Request.UserAgent}}"', req)
    inner = out[1:-1]
    # nothing can end the string, start a tag or an entity, or break the line
    bare = re.sub(r"\\.", "", inner)
    assert not set(bare) & set("\"'\\<>&=") and not any(ord(c) < 0x20 for c in bare)
    assert _js_unescape(inner) == text  # and it says exactly what was sent


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0xFFFF)))
def test_js_of_unicode_reads_back(text: str) -> None:
    assert _js_unescape(js_escape(text)) == text


def test_canonical_header_keys_are_gos() -> None:
    assert canonical_header_key("x-request-id") == "X-Request-Id"
    assert canonical_header_key("USER-AGENT") == "User-Agent"
    assert canonical_header_key("bad key") == "bad key"


def _go_canonical(key: str) -> str:
    """Go's CanonicalMIMEHeaderKey spelled out as it is specified: a key with a byte
    outside a token is left alone; else the first letter and each letter after a hyphen
    upper case, every other letter lower case."""
    token = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if not key or any(c not in token for c in key):
        return key
    out, upper = [], True
    for c in key:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


@given(st.text(alphabet="aBz-_9.x Y\u00e9", max_size=12))
def test_canonical_header_keys_match_gos_rule_the_second_time_too(key: str) -> None:
    # the second call answers from the module's memory of keys
    assert canonical_header_key(key) == _go_canonical(key)
    assert canonical_header_key(key) == _go_canonical(key)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{.Request.Methd}}", "can't evaluate field Methd in type Request"),
        ("{{.Response.Latency.X}}", "can't evaluate field X in type float64"),
        ("{{.Revision.Pod}}", "can't evaluate field Pod in type Revision (it has"),
        ("{{.Requests}}", "can't evaluate field Requests in type Input"),
        ("{{if .TraceID}}t{{end}}", "if is not supported"),
        ("{{range .Request.Header}}{{end}}", "range is not supported"),
        ("{{$x := 1}}", "variables ($x) are not supported"),
        ("{{eq 1 1}}", "function eq is not supported"),
        ("{{nosuch .TraceID}}", 'function "nosuch" not defined'),
        ("{{.Request.Header.Get}}", "wrong number of args for .Request.Header.Get"),
        ("{{.Request.Header.Get 1}}", "wrong type for value; expected string; got int"),
        ("{{.Request.Method 1}}", "is not a method but has arguments"),
        ('{{index .Request.Method "x"}}', "can't index item of type string"),
        ("{{.Request.Method", "unclosed action"),
        ("a }} b", "unexpected }}"),
        ("{{}}", "missing value for command"),
        ("{{(.TraceID}}", "unclosed left paren"),
        ("{{.TraceID)}}", "unexpected right paren"),
        ('{{"\\q"}}', "invalid escape"),
        ("{{'x'}}", "character constants"),
        ("{{printf .Response.Code}}", "printf needs a format string first"),
        ("{{/* open }}", "unclosed action"),
    ],
)
def test_what_the_subset_lacks_is_refused_when_parsed(template: str, error: str) -> None:
    with pytest.raises(TemplateError) as e:
        Template.parse(template)
    assert error in str(e.value)


def test_a_bad_template_is_refused_by_config_observability() -> None:
    with pytest.raises(ValueError, match=r"config-observability: logging\.request-log-template: "):
        ObservabilityConfig.from_mapping({"logging.request-log-template": "{{.Request.Nope}}"})


def test_a_failure_while_rendering_writes_knatives_fallback_line() -> None:
    lines: list[bytes] = []
    config = ObservabilityConfig(
        enable_request_log=True, request_log_template='{{index .Request.Header "X" 3}}'
    )
    logger = RequestLogger.from_config(config, lines.append, revision=REVISION)
    assert logger is not None
    req = request(b"/p", [(b"X", b"1")], status=502)
    logger.log(FakeConn(), req)
    assert lines[0].startswith(b"Invalid request log template: method: GET, response code: 502")
    assert lines[0].endswith(b"url: /p\n")


def test_the_logger_is_none_while_request_logs_are_off() -> None:
    assert RequestLogger.from_config(ObservabilityConfig(), lambda b: None) is None
    off = ObservabilityConfig(enable_request_log=False, request_log_template="{{.TraceID}}")
    assert RequestLogger.from_config(off, lambda b: None) is None


def test_a_line_is_written_whole_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    lines: list[bytes] = []
    logger = RequestLogger.from_config(
        ObservabilityConfig(enable_request_log=True, request_log_template="{{.Request.Method}}"),
        lines.append,
    )
    assert logger is not None
    logger.log(FakeConn(), request(method=b"PUT"))
    assert lines == [b"PUT\n"]  # the template gets its newline
    stdout_writer()(b"one line\n")
    assert capfd.readouterr().out == "one line\n"
