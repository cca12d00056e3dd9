"""``bucketfs bucket create|ls|push|pull|cat|rm|mv|root|links``, after Textile's ``buck``.

Every command but ``create`` and a bare ``ls`` acts on one bucket, named by the first argument
(a bucket key or a bucket name) or, as in ``buck``, by ``--key`` / ``BUCK_KEY``, in which case the
BUCKET argument is left out.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bucketfs.commands.common import (
    add_client_options,
    add_parser,
    client_command,
    client_from_args,
    emit,
)
from bucketfs.errors import UserError

if TYPE_CHECKING:
    from bucketfs.client.buckets import BucketsClient

log = logging.getLogger(__name__)

#: Transfers at least this big get a progress bar (when stderr is a terminal).
PROGRESS_MIN = 4 * 1024 * 1024
#: Files pulled at once by a folder pull (buck pulls 10; the hub is local and the CPU small).
PULL_WORKERS = 4

EPILOGS = {
    "create": """examples:
  bucketfs bucket create photos           new bucket in the default thread (made on first use)
  bucketfs bucket create docs --thread ID
  bucketfs bucket create --json           unnamed bucket; prints its key and root as JSON
""",
    "ls": """examples:
  bucketfs bucket ls                      list the buckets in the thread
  bucketfs bucket ls photos               list the top of bucket "photos"
  bucketfs bucket ls photos 2024/june     list a folder
  BUCK_KEY=bafzb... bucketfs bucket ls    list the bucket named by BUCK_KEY
""",
    "push": """examples:
  bucketfs bucket push photos cat.jpg             upload to /cat.jpg
  bucketfs bucket push photos cat.jpg pets/       upload to /pets/cat.jpg
  bucketfs bucket push photos ./album 2024        upload a folder's contents under /2024
  tar c . | bucketfs bucket push photos - backup.tar
  bucketfs bucket push photos a.txt --root /ipfs/bafy...   fail if the bucket moved on
""",
    "pull": """examples:
  bucketfs bucket pull photos cat.jpg             download to ./cat.jpg
  bucketfs bucket pull photos 2024 ./album        download a folder recursively
  bucketfs bucket pull photos backup.tar - | tar x
""",
    "cat": """examples:
  bucketfs bucket cat photos notes/todo.txt
  bucketfs bucket cat photos big.bin | sha256sum
""",
    "rm": """examples:
  bucketfs bucket rm photos old.jpg tmp/          remove a file and a folder
  bucketfs bucket rm photos --yes                 delete the whole bucket
""",
    "mv": """examples:
  bucketfs bucket mv photos a.jpg b.jpg           rename
  bucketfs bucket mv photos a.jpg archive         move into folder archive (mv semantics)
""",
    "root": """examples:
  bucketfs bucket root photos                     print /ipfs/<root cid>
  bucketfs bucket root photos --json              the whole root record
""",
    "links": """examples:
  bucketfs bucket links photos
  bucketfs bucket links photos cat.jpg --json
""",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bucket`` command group."""
    p = sub.add_parser(
        "bucket",
        help="create, list and transfer buckets (like Textile's buck)",
        description="Work with buckets on the hub. BUCKET is a bucket key or name; with a "
        "bucket key from --key, BUCK_KEY or `key` in the config file, leave BUCKET out.",
        epilog="examples:\n"
        + "".join(EPILOGS[n].removeprefix("examples:\n") for n in ("create", "ls", "push", "pull"))
        + "  (each action's --help has more)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="bucket_command", metavar="ACTION", required=True)

    def cmd(name: str, help: str, usage: str, func: Callable[..., int]) -> argparse.ArgumentParser:
        c = add_parser(bsub, name, help, EPILOGS[name], usage=f"bucketfs bucket {name} {usage}")
        c.add_argument("rest", nargs="*", metavar="ARG", help=argparse.SUPPRESS)
        add_client_options(c)
        c.set_defaults(func=func)
        return c

    c = add_parser(
        bsub,
        "create",
        "create a bucket",
        EPILOGS["create"],
        usage="bucketfs bucket create [NAME] [options]",
    )
    c.add_argument("name", nargs="?", default="", help="bucket name (names need not be unique)")
    c.add_argument("--private", action="store_true", help="encrypt the bucket's contents")
    c.add_argument("--cid", default="", help="start from this existing UnixFS directory CID")
    add_client_options(c)
    c.set_defaults(func=run_create)

    cmd("ls", "list buckets, or a folder in a bucket", "[BUCKET [PATH]] [options]", run_ls)
    push = cmd(
        "push", "upload a file, folder or stdin", "[BUCKET] LOCAL [REMOTE] [options]", run_push
    )
    push.add_argument("--root", help="fast-forward check: fail unless the bucket is at ROOT")
    cmd("pull", "download a file or folder", "[BUCKET] REMOTE [LOCAL] [options]", run_pull)
    cmd("cat", "print a file to stdout", "[BUCKET] PATH [options]", run_cat)
    rm = cmd(
        "rm", "remove paths, or the whole bucket", "[BUCKET] [PATH ...] [--yes] [options]", run_rm
    )
    rm.add_argument("--yes", action="store_true", help="confirm deleting the whole bucket")
    rm.add_argument("--root", help="fast-forward check: fail unless the bucket is at ROOT")
    cmd("mv", "move or rename a path (mv semantics)", "[BUCKET] FROM TO [options]", run_mv)
    cmd("root", "print a bucket's root", "[BUCKET] [options]", run_root)
    cmd("links", "print a bucket's gateway links", "[BUCKET] [PATH] [options]", run_links)


# ---------------------------------------------------------------------------------------------
# Argument helpers


def _usage(message: str) -> UserError:
    return UserError(message, exit_code=2)


def _take(args: argparse.Namespace, client: BucketsClient, min_rest: int, max_rest: int | None):
    """Split ``args.rest`` into (bucket key, remaining arguments), resolving names.

    With --key / BUCK_KEY / config ``key`` set, every argument is a remaining one (buck's
    convention); otherwise the first names the bucket.
    """
    rest = list(args.rest)
    if client.config.key:
        ref = client.config.key
    elif rest:
        ref = rest.pop(0)
    else:
        raise _usage("missing BUCKET (a bucket name or key); or set --key / BUCK_KEY")
    if len(rest) < min_rest:
        raise _usage(f"`bucketfs bucket {args.bucket_command}` needs more arguments (see --help)")
    if max_rest is not None and len(rest) > max_rest:
        raise _usage(f"too many arguments for `bucketfs bucket {args.bucket_command}`")
    return resolve_bucket(client, ref), rest


def looks_like_key(ref: str) -> bool:
    """Bucket keys are 59-character base32 CIDs starting ``bafzb`` (spec 2.3)."""
    return len(ref) == 59 and ref.startswith("bafzb") and ref.isalnum()


def resolve_bucket(client: BucketsClient, ref: str) -> str:
    """A bucket key for ``ref``, which is a key or a bucket name in the client's thread."""
    if not client.auth.thread:
        raise UserError("no thread given: pass --thread ID or set BUCK_THREAD")
    if looks_like_key(ref):
        return ref
    matches = [r.key for r in client.list() if r.name == ref]
    if not matches:
        raise UserError(f"no bucket named {ref!r} in thread {client.auth.thread}")
    if len(matches) > 1:
        raise UserError(
            f"bucket name {ref!r} is ambiguous; use one of the keys: {', '.join(sorted(matches))}"
        )
    return matches[0]


def root_dict(root: Any) -> dict[str, Any]:
    """The parts of a ``Root`` a script wants (path metadata left out: it can be huge)."""
    return {
        "key": root.key,
        "name": root.name,
        "path": root.path,
        "thread": root.thread,
        "owner": root.owner,
        "version": root.version,
        "private": bool(root.link_key),
        "created_at": root.created_at,
        "updated_at": root.updated_at,
    }


def _file_size(item: Any) -> int:
    """Logical size of a PathItem: bucketfs' ``file_size`` when the hub sends it, else ``size``."""
    return int(getattr(item, "file_size", 0) or item.size)


def _progress(total: int, desc: str, args: argparse.Namespace):
    """A tqdm bar for big transfers on a terminal, else a no-op; used as a context manager."""
    if args.json or total < PROGRESS_MIN or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _callback(bar: Any) -> Callable[[int], None] | None:
    """A progress callback (cumulative bytes) that advances ``bar``."""
    if bar is None:
        return None
    done = [0]

    def update(total: int) -> None:
        bar.update(total - done[0])
        done[0] = total

    return update


# ---------------------------------------------------------------------------------------------
# Commands


@client_command
def run_create(args: argparse.Namespace) -> int:
    """Create a bucket, in the default thread unless --thread / BUCK_THREAD names one."""
    with client_from_args(args) as client:
        client = ensure_thread(client)
        resp = client.create(args.name, private=args.private, bootstrap_cid=args.cid)
    emit(args, {"root": root_dict(resp.root), "links": _links_dict(resp.links)}, resp.root.key)
    return 0


def ensure_thread(client: BucketsClient) -> BucketsClient:
    """The client itself if it has a thread; else one on the default thread, made on first use.

    The new thread's ID is saved as ``thread`` in the config file, so a new user never has to
    think about threads.
    """
    from bucketfs import config as configmod

    if client.auth.thread:
        return client
    thread_id = client.threads.new_db(name="")
    configmod.update_file({"thread": thread_id}, client.config.path)
    print(
        f"bucketfs: created default thread {thread_id} (saved in {client.config.path})",
        file=sys.stderr,
    )
    client.config.thread = thread_id
    return client.with_thread(thread_id)


@client_command
def run_ls(args: argparse.Namespace) -> int:
    """List buckets (no BUCKET) or one folder level of a bucket."""
    with client_from_args(args) as client:
        if not args.rest and not client.config.key:
            if not client.auth.thread:
                emit(args, [], "no buckets yet: create one with `bucketfs bucket create NAME`")
                return 0
            roots = sorted(client.list(), key=lambda r: (r.name, r.key))
            rows = [root_dict(r) for r in roots]
            emit(args, rows, "\n".join(f"{r.key}  {r.name or '-'}  {r.path}" for r in roots))
            return 0
        key, rest = _take(args, client, 0, 1)
        resp = client.list_path(key, rest[0] if rest else "")
    item = resp.item
    entries = [
        {
            "name": c.name,
            "cid": c.cid,
            "is_dir": c.is_dir,
            "size": _file_size(c),
            "items_count": c.items_count,
        }
        for c in item.items
    ]
    if not item.is_dir:
        entries = [
            {"name": item.name, "cid": item.cid, "is_dir": False, "size": _file_size(item)}
        ]
    lines = [
        f"{'d' if e['is_dir'] else '-'} {e['size']:>12} {e['name']}{'/' if e['is_dir'] else ''}"
        for e in entries
    ]
    emit(args, entries, "\n".join(lines) if lines else None)
    return 0


@client_command
def run_push(args: argparse.Namespace) -> int:
    """Upload a file, a folder's contents (one PushPaths stream) or stdin."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 1, 2)
        local, remote = rest[0], (rest[1] if len(rest) > 1 else None)
        if local == "-":
            if not remote or remote.endswith("/"):
                raise _usage("pushing stdin needs a REMOTE file path")
            # Unbuffered: the push reads stdin from a gRPC daemon thread, and a rejected push
            # exits while that thread may still block in read(); a BufferedReader's lock then
            # aborts interpreter shutdown ("could not acquire lock for <stdin>").
            stdin = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
            result = client.push_path(key, remote, stdin, root=args.root)
            files = [{"path": remote.lstrip("/"), "cid": result.cid, "size": result.size}]
            return _report_push(args, files, result.root)
        src = Path(local)
        if src.is_dir():
            return _push_dir(args, client, key, src, (remote or "").strip("/"))
        if not src.exists():
            raise UserError(f"{local}: no such file or directory")
        if remote is None or remote == "":
            remote = src.name
        elif remote.endswith("/"):
            remote = remote + src.name
        try:
            f = open(src, "rb")  # noqa: SIM115 -- closed below; opened first for a clean error
        except OSError as exc:
            raise UserError(f"cannot read {local}: {exc.strerror}") from exc
        with f, _progress(os.fstat(f.fileno()).st_size, remote, args) as bar:
            st = os.fstat(f.fileno())
            result = client.push_path(
                key,
                remote,
                f,
                root=args.root,
                progress=_callback(bar),
                mode=st.st_mode & 0o7777,
                mtime_ns=st.st_mtime_ns,
            )
    files = [{"path": remote.lstrip("/"), "cid": result.cid, "size": result.size}]
    return _report_push(args, files, result.root)


def _walk_files(top: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(bucket-relative path, local path, stat) for regular files under ``top``, sorted."""
    for dirpath, dirnames, filenames in os.walk(top, onerror=_walk_error):
        for name in [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            # Following directory links could loop or leave the tree; say so rather than skip
            # silently. (Links to files are pushed as the file they point to.)
            log.warning("skipping %s: a symlink to a directory", Path(dirpath) / name)
            dirnames.remove(name)
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.stat()
            except OSError as exc:
                raise UserError(f"cannot read {full}: {exc.strerror}") from exc
            if not full.is_file():
                log.warning("skipping %s: not a regular file", full)
                continue
            yield full.relative_to(top).as_posix(), full, st


def _walk_error(exc: OSError) -> None:
    raise UserError(f"cannot read {exc.filename}: {exc.strerror}") from exc


def _push_dir(
    args: argparse.Namespace, client: BucketsClient, key: str, src: Path, prefix: str
) -> int:
    files = list(_walk_files(src))
    if not files:
        raise UserError(f"{src} holds no files to push")
    total = sum(st.st_size for _, _, st in files)
    items = [(f"{prefix}/{rel}" if prefix else rel, path) for rel, path, _ in files]
    # Keep each file's permission bits and mtime, as the mount will show them.
    attrs = {
        remote: (st.st_mode & 0o7777, st.st_mtime_ns)
        for (remote, _), (_, _, st) in zip(items, files, strict=True)
    }
    with _progress(total, src.name or str(src), args) as bar:
        result = client.push_paths(
            key, items, root=args.root, progress=_callback(bar), attrs=attrs
        )
    pushed = [{"path": f.path, "cid": f.cid, "size": f.size} for f in result.files]
    return _report_push(args, pushed, result.root)


def _report_push(args: argparse.Namespace, files: list[dict[str, Any]], root: Any) -> int:
    text = f"pushed {len(files)} file{'s' if len(files) != 1 else ''}; root {root.path}"
    emit(args, {"files": files, "root": root_dict(root)}, text)
    return 0


@client_command
def run_pull(args: argparse.Namespace) -> int:
    """Download a file (to LOCAL, a folder, or stdout with -) or a folder recursively."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 1, 2)
        remote = rest[0].strip("/")
        local = rest[1] if len(rest) > 1 else None
        item = client.list_path(key, remote).item
        if local == "-":
            if item.is_dir:
                raise UserError(f"{remote or '/'} is a folder; pull it to a local folder instead")
            client.download(key, remote, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return 0
        if item.is_dir:
            dest = Path(local) if local else Path(Path(remote).name or ".")
            pulled = _pull_dir(args, client, key, remote, dest)
        else:
            dest = Path(local) if local else Path(Path(remote).name)
            if dest.is_dir():
                dest = dest / Path(remote).name
            _pull_file(args, client, key, remote, dest, _file_size(item))
            _apply_attrs(dest, item)
            pulled = [{"path": remote, "local": str(dest), "size": _file_size(item)}]
    text = f"pulled {len(pulled)} file{'s' if len(pulled) != 1 else ''} to {dest}"
    emit(args, {"files": pulled}, text)
    return 0


def _pull_file(
    args: argparse.Namespace, client: BucketsClient, key: str, remote: str, dest: Path, size: int
) -> None:
    """Pull one file with its own progress bar."""
    with _progress(size, remote, args) as bar:
        _fetch(client, key, remote, dest, _callback(bar))


def _fetch(
    client: BucketsClient, key: str, remote: str, dest: Path, progress: Callable[[int], None] | None
) -> None:
    """Pull into a temp file beside ``dest`` and rename, so a failure leaves no partial file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            client.download(key, remote, out, progress=progress)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _apply_attrs(dest: Path, item: Any) -> None:
    """Give a pulled file the mode and mtime the bucket recorded (bucketfs hubs record them)."""
    mode = getattr(item, "mode", 0) & 0o7777
    mtime = getattr(item, "mtime", 0)
    if mode:
        os.chmod(dest, mode)
    if mtime:
        os.utime(dest, ns=(mtime, mtime))


def _pull_dir(
    args: argparse.Namespace, client: BucketsClient, key: str, remote: str, dest: Path
) -> list[dict[str, Any]]:
    """Walk the folder with one ListPath per level (as buck does), then pull the files
    ``PULL_WORKERS`` at a time (the client is thread-safe) under one progress bar."""
    files: list[tuple[str, Path, Any]] = []
    stack = [(remote, dest)]
    while stack:
        rpath, lpath = stack.pop()
        lpath.mkdir(parents=True, exist_ok=True)
        for child in client.list_path(key, rpath).item.items:
            if child.name == ".textileseed":
                continue  # the bucket's internal seed, not user data
            crel = f"{rpath}/{child.name}" if rpath else child.name
            if child.is_dir:
                stack.append((crel, lpath / child.name))
            else:
                files.append((crel, lpath / child.name, child))
    total = sum(_file_size(item) for _, _, item in files)
    lock = threading.Lock()
    with _progress(total, remote or "/", args) as bar:

        def one(crel: str, local: Path, item: Any) -> None:
            done = [0]

            def progress(n: int) -> None:  # per-file cumulative bytes → the shared bar
                with lock:
                    bar.update(n - done[0])
                    done[0] = n

            _fetch(client, key, crel, local, progress if bar is not None else None)
            _apply_attrs(local, item)

        with ThreadPoolExecutor(PULL_WORKERS) as pool:
            futures = [pool.submit(one, *f) for f in files]
            try:
                for fut in as_completed(futures):
                    fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()  # stop at the first failure; running pulls finish or fail
                raise
    return [{"path": crel, "local": str(local)} for crel, local, _ in files]


@client_command
def run_cat(args: argparse.Namespace) -> int:
    """Stream a file to stdout."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 1, 1)
        out: BinaryIO = sys.stdout.buffer
        client.download(key, rest[0].strip("/"), out)
        out.flush()
    return 0


@client_command
def run_rm(args: argparse.Namespace) -> int:
    """Remove paths; with no path and --yes, delete the bucket."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 0, None)
        if not rest:
            if not args.yes:
                raise _usage(f"to delete the whole bucket {key}, add --yes")
            client.remove(key)
            emit(args, {"removed": key}, f"deleted bucket {key}")
            return 0
        root = args.root
        removed = []
        for path in rest:
            new_root = client.remove_path(key, path.strip("/"), root=root)
            # Chain the fast-forward root so a concurrent writer is still detected.
            root = new_root.path if root else None
            removed.append(path)
    emit(args, {"removed": removed, "root": root_dict(new_root)}, f"root {new_root.path}")
    return 0


@client_command
def run_mv(args: argparse.Namespace) -> int:
    """Move or rename a path (MovePath: into an existing folder, like mv)."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 2, 2)
        client.move_path(key, rest[0].strip("/"), rest[1].strip("/"))
        root = client.root(key)
    emit(args, {"root": root_dict(root)}, f"root {root.path}")
    return 0


@client_command
def run_root(args: argparse.Namespace) -> int:
    """Print the bucket's root path (``/ipfs/<cid>``)."""
    with client_from_args(args) as client:
        key, _ = _take(args, client, 0, 0)
        root = client.root(key)
    emit(args, root_dict(root), root.path)
    return 0


def _links_dict(links: Any) -> dict[str, str]:
    return {"url": links.url, "www": links.www, "ipns": links.ipns}


@client_command
def run_links(args: argparse.Namespace) -> int:
    """Print the gateway URLs for the bucket or a path in it."""
    with client_from_args(args) as client:
        key, rest = _take(args, client, 0, 1)
        links = client.links(key, rest[0] if rest else "")
    d = _links_dict(links)
    emit(args, d, "\n".join(f"{k}: {v}" for k, v in d.items() if v))
    return 0
