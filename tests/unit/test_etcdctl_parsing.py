"""etcdctl's Go-compatible pieces: pflag parsing, strconv/time texts, %q, tabwriter, txn input."""
from __future__ import annotations

import pytest

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.flags import FlagError, FlagSet, pflag_usages
from pyetcd.etcdctl.runtime import Exit
from pyetcd.etcdctl.txn import GoPanic, argify, parse_compare


def _flags() -> FlagSet:
    fs = FlagSet()
    fs.add("prefix", "bool", False, "p")
    fs.add("limit", "int64", 0, "l")
    fs.add("write-out", "string", "simple", "w", "w")
    fs.add("endpoints", "strings", ["127.0.0.1:2379"], "e")
    fs.add("command-timeout", "duration", 5.0, "t")
    return fs


def test_flags_anywhere_and_forms():
    fs = _flags()
    args = fs.parse(["a", "--prefix", "--limit", "3", "-wjson", "b", "--endpoints=x,y", "--", "--c"])
    assert args == ["a", "b", "--c"]
    assert (fs["prefix"], fs["limit"], fs["write-out"], fs["endpoints"]) == (True, 3, "json", ["x", "y"])


def test_bool_flag_does_not_take_next_arg_and_accepts_false():
    fs = _flags()
    assert fs.parse(["--prefix", "k"]) == ["k"]
    fs.parse(["--prefix=false"])
    assert fs["prefix"] is False


@pytest.mark.parametrize("argv, message", [
    (["--nope"], "unknown flag: --nope"),
    (["-z"], "unknown shorthand flag: 'z' in -z"),
    (["--limit"], "flag needs an argument: --limit"),
    (["-w"], "flag needs an argument: 'w' in -w"),
    (["---x"], "bad flag syntax: ---x"),
    (["--limit=abc"], 'invalid argument "abc" for "--limit" flag: strconv.ParseInt: parsing "abc": invalid syntax'),
    (["--prefix=maybe"], 'invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
    (["--command-timeout=5"], 'invalid argument "5" for "--command-timeout" flag: time: missing unit in duration "5"'),
])
def test_flag_errors_have_pflag_texts(argv, message):
    with pytest.raises(FlagError) as exc:
        _flags().parse(argv)
    assert str(exc.value) == message


def test_go_number_and_duration_parsing():
    assert gofmt.parse_int("0x10", 0) == 16
    assert gofmt.parse_int("-7") == -7
    with pytest.raises(gofmt.GoError, match="value out of range"):
        gofmt.parse_int("9223372036854775808")
    assert gofmt.parse_duration("1m30s") == 90
    assert gofmt.parse_duration("1500ms") == 1.5
    with pytest.raises(gofmt.GoError, match='time: unknown unit "x" in duration "5x"'):
        gofmt.parse_duration("5x")


def test_go_quote_matches_fmt_q():
    assert gofmt.go_quote(b"fmt/\x01bin") == '"fmt/\\x01bin"'
    assert gofmt.go_quote(b"\xff\xfe") == '"\\xff\\xfe"'
    assert gofmt.go_quote('a"b\\ é\n'.encode()) == '"a\\"b\\\\ é\\n"'
    assert gofmt.go_unquote('"a\\x62\\u00e9"') == "abé"


def test_tabwriter_pads_with_tabs_like_go():
    text = "x\ta\nlonger-name\tb\n\nc\td"
    assert gofmt.tabwrite(text) == "x\t\ta\nlonger-name\tb\n\nc\td"


def test_pflag_usage_layout():
    fs = FlagSet()
    fs.add("help", "bool", False, "help for put", "h")
    fs.add("lease", "string", "0", "lease ID")
    assert pflag_usages(fs.sorted()) == ('  -h, --help           help for put\n'
                                         '      --lease string   lease ID (default "0")\n')


def test_compare_parsing():
    cmp = parse_compare('value("k") = "v"')
    assert (cmp.key, cmp.value, cmp.result) == (b"k", b"v", 0)
    cmp = parse_compare('mod("k") > "3"')
    assert (cmp.mod_revision, cmp.result) == (3, 1)
    with pytest.raises(Exit) as exc:
        parse_compare('value(k) = "v"')
    assert exc.value.message == 'malformed comparison: value(k) = "v"; got value("")  ""'
    with pytest.raises(Exit) as exc:
        parse_compare('value("k") = v')
    assert exc.value.message == 'malformed comparison: value("k") = v; got value("k") = ""'
    with pytest.raises(Exit, match="invalid txn compare request"):
        parse_compare('version("k") = "x"')
    with pytest.raises(GoPanic):
        parse_compare('value("k") >= "v"')


def test_argify_keeps_etcdctl_quirks():
    assert argify('put "a b" "c\\x64"') == ["put", "a b", "cd"]
    # single quotes are cut at len(args)-1, as etcdctl 3.5.1 does
    assert argify("put 'abc' v") == ["put", "a", "v"]
    assert argify('put a"b c') == ["put", 'a"b', "c"]
