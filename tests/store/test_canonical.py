"""orjson's shard lines are byte-identical to the json module's canonical form (or fall back to it).

Property-style: seeded random records (nested dicts and lists, floats over the whole double range,
ints past 64 bits, unicode up to U+10FFFF) plus the hand-picked edge cases.
"""

from __future__ import annotations

import json
import random
import struct

import pytest

from heal_batch.store import shards
from heal_batch.store.shards import canonical_line, json_line, parse_line

pytestmark = pytest.mark.skipif(shards.orjson is None, reason="orjson is not installed")

EDGE_FLOATS = [
    1e16,
    1e-7,
    -0.0,
    0.0,
    1e-5,
    1e-4,
    0.0001234,
    1e15,
    9999999999999998.0,
    1e21,
    1e22,
    5e-324,
    1.7976931348623157e308,
    0.1,
    2.5,
    -1e100,
    123456789.123,
]
EDGE_INTS = [
    0,
    -1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    2**64 + 1,
    -(2**63),
    -(2**63) - 1,
    10**40,
    -(10**40),
]
EDGE_TEXT = [
    "",
    "plain",
    "é ü ß",
    "日本語",
    "😀 \U00010000 \U0010ffff",
    "\x00\x01\x1f\x7f",
    "\u2028\u2029",
    'quote " backslash \\ slash /',
    "\n\r\t\b\f",
    "1e16",
    ":1e5",
    "0.00001",
]


def _float(rng: random.Random) -> float:
    while True:
        if rng.random() < 0.5:
            x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        else:
            x = rng.uniform(-10, 10) * 10.0 ** rng.randint(-30, 30)
        if x == x and abs(x) != float("inf"):
            return x


def _text(rng: random.Random) -> str:
    def char() -> str:
        c = rng.choice(
            [rng.randint(0, 0x7F), rng.randint(0x80, 0xFFFF), rng.randint(0x10000, 0x10FFFF)]
        )
        return chr(c) if not 0xD800 <= c < 0xE000 else "x"

    return "".join(char() for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int):
    kind = rng.randrange(9 if depth < 4 else 7)
    if kind == 0:
        return _float(rng)
    if kind == 1:
        return rng.choice([rng.randint(-(2**70), 2**70), rng.randint(-1000, 1000)])
    if kind == 2:
        return _text(rng)
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(EDGE_FLOATS + EDGE_INTS + EDGE_TEXT)
    if kind in (5, 6):
        return [rng.randint(0, 50000) for _ in range(rng.randint(0, 5))]
    if kind == 7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return _record(rng, depth + 1)


def _record(rng: random.Random, depth: int = 0) -> dict:
    return {_text(rng): _value(rng, depth) for _ in range(rng.randint(0, 6))}


def test_random_records_are_byte_identical_and_parse_back_alike():
    rng = random.Random(20261202)
    for _ in range(3000):
        record = _record(rng)
        line = canonical_line(record)
        assert line == json_line(record), record
        assert parse_line(line) == json.loads(line)


@pytest.mark.parametrize("value", EDGE_FLOATS + EDGE_INTS + EDGE_TEXT + [[], {}, None])
def test_edge_values(value):
    record = {"z": value, "a": {"nested": [value, {"deeper": value}]}, "ü": 1, "😀": 2, "\uffff": 3}
    line = canonical_line(record)
    assert line == json_line(record)
    assert repr(parse_line(line)) == repr(json.loads(line))  # -0.0 stays -0.0


def test_orjson_takes_the_common_records():
    """The speed-up applies: a plain generate-like record never reaches the json fallback."""
    record = {
        "id": "p1#s0",
        "token_ids": list(range(300)),
        "pass_rate": 0.75,
        "source": None,
        "completion": "Step 1: add.\n\n\\boxed{7}",
        "entropies": "AAAA" * 64,
    }
    assert canonical_line(record) == shards.orjson.dumps(record, option=shards._ORJSON_OPTIONS)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_floats_are_refused(bad):
    with pytest.raises(ValueError):
        canonical_line({"a": [1, {"b": bad}], "c": None})


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused(text):
    with pytest.raises(UnicodeEncodeError):
        canonical_line({"t": text})


def test_types_json_refuses_are_still_refused():
    class Text(str):
        pass

    with pytest.raises(TypeError):
        canonical_line({"a": {1, 2}})
    with pytest.raises(TypeError):
        canonical_line({"a": b"bytes"})
    with pytest.raises(TypeError):  # mixed key types cannot be sorted
        canonical_line({"a": 1, 2: 3})
    assert canonical_line({"a": Text("x"), "b": True}) == b'{"a":"x","b":true}\n'


def test_parse_keeps_what_orjson_refuses():
    assert parse_line(b'{"big":18446744073709551616}') == {"big": 2**64}
    assert parse_line(b'{"s":"\\ud800"}') == {"s": "\ud800"}
    with pytest.raises(json.JSONDecodeError):
        parse_line(b'{"half":')
