"""Request JSON decoded as etcd's grpc-gateway decodes it: the values, and Go's error texts
(each text below is what etcd 3.5.1 answered for that body)."""
from __future__ import annotations

import pytest

from pyetcd.httpapi.gojson import GoJsonError, decode_stream, fill, go_b64decode
from pyetcd.proto.etcdserverpb import rpc_pb2


def decode(body: str, cls=rpc_pb2.RangeRequest):
    msg = cls()
    fill(msg, next(decode_stream(body)))
    return msg


@pytest.mark.parametrize("body, text", [
    ('{"key":"YQ=="', "unexpected EOF"),
    ('{"key" 1}', "invalid character '1' after object key"),
    ('{"key":1 ,}', "invalid character '}' looking for beginning of object key string"),
    ('{1}', "invalid character '1' looking for beginning of object key string"),
    ('{"key":"a\\u00zz"}', "invalid character 'z' in \\u hexadecimal character escape"),
    ('{"key":"\\q"}', "invalid character 'q' in string escape code"),
    ('{"key":tru}', "invalid character '}' in literal true (expecting 'e')"),
    ('{"key":-x}', "invalid character 'x' in numeric literal"),
    ('{"key":"a\tb"}', "invalid character '\\t' in string literal"),
    ('{"key":"YQ==","limit":1.0}', "json: cannot unmarshal number 1.0 into Go value of type int64"),
    ('{"key":"YQ==","limit":"12x"}', "invalid character 'x' after top-level value"),
    ('{"key":"YQ==","limit":""}', "unexpected end of JSON input"),
    ('{"key":"YQ==","limit":"true"}', "json: cannot unmarshal bool into Go value of type int64"),
    ('{"key":"YQ==","limit":"\\u0031"}', "invalid character '\\\\' looking for beginning of value"),
    ('{"key":"YQ==","keys_only":1}', "json: cannot unmarshal number into Go value of type bool"),
    ('{"key":5}', "json: cannot unmarshal number into Go value of type []uint8"),
    ('{"key":"YQ==","sort_order":1.5}', "json: cannot unmarshal number 1.5 into Go value of type protoreflect.EnumNumber"),
    ('{"key":"YQ==","sort_order":"1"}', 'unknown value "\\"1\\"" for enum etcdserverpb.RangeRequest.SortOrder'),
    ('"x"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
    ('{"key":"YQ"}', "illegal base64 data at input byte 0"),
    ('{"key":"YQ="}', "illegal base64 data at input byte 3"),
    ('{"key":"Y Q=="}', "illegal base64 data at input byte 1"),
    ('{"key":"YQ-_"}', "illegal base64 data at input byte 2"),
])
def test_go_error_texts(body, text):
    with pytest.raises(GoJsonError) as e:
        decode(body)
    assert str(e.value) == text


def test_values():
    req = decode('{"key":"YQ==\\n","limit":" 12","sort_order":7,"keysOnly":true,"range_end":null} ignored')
    assert (req.key, req.limit, req.sort_order, req.keys_only, req.range_end) == (b"a", 12, 7, True, b"")
    txn = decode('{"success":[{"requestPut":{"key":"YQ=="}},{"request_range":{"key":"Yg=="}}]}', rpc_pb2.TxnRequest)
    assert (txn.success[0].request_put.key, txn.success[1].request_range.key) == (b"a", b"b")
    assert decode('{"ID":"-1"}', rpc_pb2.LeaseTimeToLiveRequest).ID == -1
    with pytest.raises(GoJsonError, match="number -1 into Go value of type uint64"):
        decode('{"ID":"-1"}', rpc_pb2.MemberRemoveRequest)


def test_a_body_is_a_stream_of_values():
    values = decode_stream('{"ID":1} {"ID":2}\n{"ID":3} x')
    assert [next(values).value["ID"].text for _ in range(3)] == ["1", "2", "3"]
    with pytest.raises(GoJsonError, match="invalid character 'x' looking for beginning of value"):
        next(values)


def test_base64_skips_newlines():
    assert go_b64decode("YW\r\nJj") == b"abc" and go_b64decode("YWI=\n") == b"ab"


def test_nesting_as_deep_as_go_allows():
    assert decode('{"key":"YQ==","x":' + "[" * 9999 + "]" * 9999 + "}").key == b"a"
    with pytest.raises(GoJsonError, match=r"^invalid character '\[' exceeded max depth$"):
        decode('{"key":"YQ==","x":' + "[" * 20000 + "]" * 20000 + "}")
