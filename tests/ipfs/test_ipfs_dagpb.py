"""dag-pb and UnixFS Data encoding: the hex examples of unixfs.md 2.5 and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketfs.ipfs import dagpb
from bucketfs.ipfs.cid import CID, DAG_PB, RAW
from bucketfs.ipfs.dagpb import DagPBError, PBLink, PBNode
from bucketfs.ipfs.unixfs import (
    DataType,
    UnixFSData,
    UnixFSError,
    UnixTime,
    decode_data,
    encode_data,
)

pytestmark = pytest.mark.timeout(120)

HELLO_V0 = "0a120802120c68656c6c6f20776f726c640a180c"
PLANETS = (
    "1232"
    "0a2401551220"
    "2c5d6a61e10724cce13dc5f5d5ee2929c8c90d1382f9e12daa23391d2572664f"
    "12086d6172732e747874"
    "180c"
    "1233"
    "0a2401551220"
    "e593ce0cc55a42c89791585cd243f55cc56c64d2c6d7a84015c7821c476e4310"
    "120976656e75732e747874"
    "180d"
    "0a020801"
)
TWO_CHUNK = (
    "122c0a2401551220"
    "8a39d2abd3999ab73c34db2476849cddf303ce389b35826850f9a700589b4a90"
    "1200"
    "18808010"
    "122a0a2401551220"
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    "1200"
    "1801"
    "0a0c"
    "0802"
    "18818010"
    "20808010"
    "2001"
)


def test_hello_world_v0_leaf() -> None:
    block = bytes.fromhex(HELLO_V0)
    assert len(block) == 20
    node = dagpb.decode(block)
    assert node.links == ()
    ufs = decode_data(node.data or b"")
    assert (ufs.type, ufs.data, ufs.filesize) == (DataType.File, b"hello world\n", 12)
    built = dagpb.encode(
        PBNode((), encode_data(UnixFSData(DataType.File, data=b"hello world\n", filesize=12)))
    )
    assert built == block
    assert str(CID.of_dagpb(block, 0)) == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def test_empty_file_and_empty_dir_blocks() -> None:
    empty_file = dagpb.encode(PBNode((), encode_data(UnixFSData(DataType.File, filesize=0))))
    assert empty_file.hex() == "0a0408021800"
    assert str(CID.of_dagpb(empty_file, 0)) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    empty_dir = dagpb.encode(PBNode((), encode_data(UnixFSData(DataType.Directory))))
    assert empty_dir.hex() == "0a020801"
    assert str(CID.of_dagpb(empty_dir, 0)) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    assert str(CID.of_dagpb(empty_dir)) == (
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    )


def test_planets_directory_block() -> None:
    block = bytes.fromhex(PLANETS)
    assert len(block) == 109
    node = dagpb.decode(block)
    assert [(lk.name, lk.tsize, lk.cid.codec) for lk in node.links] == [
        (b"mars.txt", 12, RAW),
        (b"venus.txt", 13, RAW),
    ]
    assert dagpb.encode(node) == block
    assert str(CID.of_dagpb(block)) == "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi"


def test_two_chunk_root_block() -> None:
    block = bytes.fromhex(TWO_CHUNK)
    assert len(block) == 104
    node = dagpb.decode(block)
    assert [lk.name for lk in node.links] == [b"", b""]  # empty names are written: 12 00
    ufs = decode_data(node.data or b"")
    assert (ufs.filesize, ufs.blocksizes) == (262145, (262144, 1))
    assert encode_data(ufs) == node.data
    assert dagpb.encode(node) == block
    assert str(CID.of_dagpb(block)) == "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"


def test_data_before_links_is_rejected() -> None:
    link = bytes.fromhex(TWO_CHUNK)[:46]
    with pytest.raises(DagPBError, match="Links after Data"):
        dagpb.decode(bytes.fromhex("0a020801") + link)


@pytest.mark.parametrize(
    "hexed",
    ["0a05080112", "1202aaaa", "08", "12020a00", "0a0208011a00", "12041200180a"],
)
def test_malformed_blocks_are_rejected(hexed: str) -> None:
    with pytest.raises(DagPBError):
        dagpb.decode(bytes.fromhex(hexed))


def test_packed_blocksizes_decode_but_encode_unpacked() -> None:
    packed = bytes.fromhex("0802180322020201")
    ufs = decode_data(packed)
    assert ufs.blocksizes == (2, 1)
    assert encode_data(ufs).hex() == "0802180320022001"


def test_mode_mtime_round_trip() -> None:
    d = UnixFSData(DataType.File, filesize=0, mode=0o100644, mtime=UnixTime(-5, 7))
    assert decode_data(encode_data(d)) == d
    assert UnixTime.from_ns(1_500_000_000).to_ns() == 1_500_000_000
    with pytest.raises(UnixFSError):
        UnixTime(0, 0)


def test_unknown_type_rejected() -> None:
    with pytest.raises(UnixFSError, match="unknown UnixFS type"):
        decode_data(bytes.fromhex("0809"))


cids = st.builds(
    lambda data, codec, v0: (
        CID.of_dagpb(data, 0) if v0 else CID(1, codec, CID.of_raw(data).multihash)
    ),
    st.binary(max_size=8),
    st.sampled_from([RAW, DAG_PB]),
    st.booleans(),
)
links = st.builds(
    PBLink,
    cids,
    st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.integers(0, 2**63 - 1)),
)
times = st.builds(
    UnixTime, st.integers(-(2**63), 2**63 - 1), st.one_of(st.none(), st.integers(1, 999_999_999))
)
datas = st.builds(
    UnixFSData,
    st.sampled_from(list(DataType)),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    st.lists(st.integers(0, 2**64 - 1), max_size=5).map(tuple),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.one_of(st.none(), times),
)
nodes = st.builds(
    PBNode,
    st.lists(links, max_size=6).map(tuple),
    st.one_of(st.none(), st.binary(max_size=40), datas.map(encode_data)),
)


@given(nodes)
def test_dagpb_encode_decode_encode_is_identity(node: PBNode) -> None:
    block = dagpb.encode(node)
    assert dagpb.decode(block) == node
    assert dagpb.encode(dagpb.decode(block)) == block


@given(datas)
def test_unixfs_data_round_trip(d: UnixFSData) -> None:
    raw = encode_data(d)
    assert decode_data(raw) == d
    assert encode_data(decode_data(raw)) == raw
