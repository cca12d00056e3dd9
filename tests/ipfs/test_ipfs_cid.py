"""CID parsing and formatting (unixfs.md 1.3-1.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketfs.ipfs.cid import (
    CID,
    DAG_PB,
    LIBP2P_KEY,
    RAW,
    InvalidCID,
    b32encode,
    b58decode,
    b58encode,
    decode_varint,
    encode_varint,
)

V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
V1 = "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"
DIGEST = "46d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021eba45768b4c0e"

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("n", "hexed"), [(0x70, "70"), (0x55, "55"), (300, "ac02"), (262144, "808010")]
)
def test_varint_examples(n: int, hexed: str) -> None:
    assert encode_varint(n).hex() == hexed
    assert decode_varint(bytes.fromhex(hexed)) == (n, len(hexed) // 2)


def test_v0_v1_conversion() -> None:
    v0 = CID.decode(V0)
    assert (v0.version, v0.codec) == (0, DAG_PB)
    assert v0.buffer == bytes.fromhex("1220" + DIGEST)
    assert str(v0) == V0
    v1 = v0.to_v1()
    assert str(v1) == V1
    assert v1.buffer == bytes.fromhex("01701220" + DIGEST)
    assert CID.decode(V1).to_v0() == v0
    assert v0 != v1 and v0.to_v1() == CID.decode(V1)


def test_zero_length_block_cids() -> None:
    assert str(CID.of_dagpb(b"", 0)) == "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
    assert str(CID.of_dagpb(b"")) == "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert str(CID.of_raw(b"")) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_prefixes_and_lengths() -> None:
    raw = CID.of_raw(b"x")
    assert str(raw).startswith("bafkrei") and len(str(raw)) == 59
    key = CID(1, LIBP2P_KEY, raw.multihash)
    assert str(key).startswith("bafzbei")
    assert CID.decode(str(key)).codec == LIBP2P_KEY


@pytest.mark.parametrize("base", ["base32", "base58btc", "base36"])
def test_multibase_round_trip(base: str) -> None:
    cid = CID.decode(V1)
    text = cid.encode(base)
    assert text[0] == {"base32": "b", "base58btc": "z", "base36": "k"}[base]
    assert CID.decode(text) == cid


def test_upper_case_base32_accepted() -> None:
    assert CID.decode("B" + V1[1:].upper()) == CID.decode(V1)


def test_binary_parse() -> None:
    assert CID.decode(bytes.fromhex("01551220" + DIGEST)).codec == RAW
    assert CID.decode(bytes.fromhex("1220" + DIGEST)).version == 0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("xyz", "multibase"),
        ("Qm" + "0" * 44, "base58"),
        ("b" + "1" * 20, "base32"),
        ("z" + b58encode(bytes.fromhex("1220" + DIGEST)), "CIDv0"),
        ("b" + "afybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2m", "digest"),
        ("b" + b32encode(bytes.fromhex("02551220" + DIGEST)), "version 2"),
    ],
)
def test_invalid_cids_raise_clear_errors(text: str, words: str) -> None:
    with pytest.raises(InvalidCID) as info:
        CID.decode(text)
    assert words.lower() in str(info.value).lower()


def test_cid_is_immutable_and_hashable() -> None:
    cid = CID.decode(V1)
    with pytest.raises(AttributeError):
        cid.codec = RAW  # type: ignore[misc]
    assert {cid: 1}[CID.decode(V1)] == 1


def test_verify() -> None:
    assert CID.of_raw(b"abc").verify(b"abc")
    assert not CID.of_raw(b"abc").verify(b"abd")


@given(st.binary(min_size=0, max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.binary(min_size=1, max_size=200), st.sampled_from([RAW, DAG_PB, LIBP2P_KEY, 0x71]))
def test_cid_text_and_binary_round_trip(data: bytes, codec: int) -> None:
    cid = CID(1, codec, CID.of_raw(data).multihash)
    assert CID.decode(str(cid)) == cid
    assert CID.decode(cid.buffer) == cid
    assert CID.decode(cid.encode("base58btc")) == cid
    assert CID.decode(cid.encode("base36")) == cid
