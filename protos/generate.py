"""Regenerate ``bucketfs/pb/`` from the ``.proto`` files under ``protos/bucketfs/pb/``.

Usage: ``python protos/generate.py [OUT_ROOT]`` (default: the repository root). The files
land in ``OUT_ROOT/bucketfs/pb/``; ``tests/test_protos_fresh.py`` generates into a temporary
directory and compares, so committed stubs can never be stale.

The .proto files import each other as ``bucketfs/pb/<name>.proto``, which is why protoc
emits ``from bucketfs.pb import x_pb2`` and no import rewriting is needed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PACKAGE = Path("bucketfs") / "pb"

INIT_TEXT = '''"""Generated protocol stubs: run ``python protos/generate.py``, never edit."""
'''


def proto_files() -> list[Path]:
    """The .proto sources, relative to ``protos/``, in a stable order."""
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Generate the stubs into ``out_root/bucketfs/pb``, replacing what was there.

    Returns the generated file paths. Raises ``RuntimeError`` if protoc fails.
    """
    from grpc_tools import protoc  # imported here: only needed to regenerate

    out_dir = out_root / PACKAGE
    if out_dir.exists():
        # Remove stubs of deleted .proto files too, so the tree matches the sources exactly.
        for old in out_dir.iterdir():
            if old.suffix in (".py", ".pyi") or old.name == "__pycache__":
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--pyi_out={out_root}",
        *(str(p) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    (out_dir / "__init__.py").write_text(INIT_TEXT)
    return sorted(out_dir.iterdir())


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    out_root = Path(argv[1]) if len(argv) > 1 else REPO_ROOT
    for path in generate(out_root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
