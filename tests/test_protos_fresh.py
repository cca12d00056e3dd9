"""The committed stubs in bucketfs/pb/ must be exactly what protos/generate.py produces."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_generator():
    path = REPO / "protos" / "generate.py"
    spec = importlib.util.spec_from_file_location("protos_generate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    generated = _load_generator().generate(tmp_path)
    fresh = {p.name for p in generated if p.is_file()}
    committed_dir = REPO / "bucketfs" / "pb"
    committed = {p.name for p in committed_dir.iterdir() if p.suffix in (".py", ".pyi")}
    assert fresh == committed, "stubs added or removed: run python protos/generate.py"
    stale = [
        name
        for name in sorted(fresh)
        if not filecmp.cmp(tmp_path / "bucketfs" / "pb" / name, committed_dir / name, shallow=False)
    ]
    assert not stale, f"stale stubs {stale}: run python protos/generate.py"


def test_textile_method_paths_and_extension_numbers() -> None:
    from bucketfs.pb import bucketsd_pb2, fs_pb2, threads_pb2

    service = bucketsd_pb2.DESCRIPTOR.services_by_name["APIService"]
    assert service.full_name == "api.bucketsd.pb.APIService"
    assert len(service.methods) == 21
    assert threads_pb2.DESCRIPTOR.services_by_name["API"].full_name == "threads.pb.API"
    item = bucketsd_pb2.PathItem.DESCRIPTOR.fields_by_name
    assert {n: item[n].number for n in ("file_size", "mode", "mtime", "symlink_target")} == {
        "file_size": 100,
        "mode": 101,
        "mtime": 102,
        "symlink_target": 103,
    }
    assert "metadata" in item and item["metadata"].number == 9
    assert fs_pb2.DESCRIPTOR.services_by_name["FS"].full_name == "bucketfs.pb.FS"
