"""Every client command through ``python -m bucketfs.cli``, against the real hub."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from clirun import CLI

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def cli(tmp_path: Path, hub: str) -> CLI:
    return CLI(tmp_path, hub)


def test_bucket_create_makes_and_saves_default_thread(cli: CLI) -> None:
    key = cli.out("bucket", "create", "photos").strip()
    assert key.startswith("bafzb")
    thread = tomllib.loads(cli.config.read_text())["thread"]
    # The second bucket lands in the same, saved thread.
    second = cli.json("bucket", "create", "docs")
    assert second["root"]["thread"] == thread and second["root"]["name"] == "docs"
    listed = cli.json("bucket", "ls")
    assert {r["name"]: r["key"] for r in listed} == {"photos": key, "docs": second["root"]["key"]}
    threads = cli.json("thread", "ls")
    assert any(t["id"] == thread and t["default"] for t in threads)


def test_thread_create_and_ls(cli: CLI) -> None:
    made = cli.json("thread", "create", "--name", "my-thread")
    assert made["name"] == "my-thread"
    rows = cli.json("thread", "ls")
    assert {"id": made["id"], "name": "my-thread", "default": False} in rows
    cli.run("thread", "create", "--default")
    assert "thread" in tomllib.loads(cli.config.read_text())
    assert "name may only contain" in cli.err("thread", "create", "--name", "bad name!")


def test_push_ls_cat_pull_mv_rm_root_links(cli: CLI, tmp_path: Path) -> None:
    cli.run("bucket", "create", "b")
    (cli.cwd / "hello.txt").write_text("hello\n")
    album = cli.cwd / "album"
    (album / "sub").mkdir(parents=True)
    for i in range(20):
        (album / f"p{i}.jpg").write_bytes(os.urandom(1000 + i))
    (album / "sub" / "deep.txt").write_text("deep\n")

    pushed = cli.json("bucket", "push", "b", "hello.txt")
    assert pushed["files"][0]["path"] == "hello.txt"
    cli.run("bucket", "push", "b", "hello.txt", "texts/")
    many = cli.json("bucket", "push", "b", "album", "2024")
    assert len(many["files"]) == 21
    cli.run("bucket", "push", "b", "-", "stdin.txt", input=b"from stdin")

    top = {e["name"]: e for e in cli.json("bucket", "ls", "b")}
    assert {"hello.txt", "texts", "2024", "stdin.txt", ".textileseed"} <= set(top)
    assert top["hello.txt"]["size"] == 6 and top["2024"]["is_dir"]
    assert "hello.txt" in cli.out("bucket", "ls", "b", "texts")

    assert cli.out("bucket", "cat", "b", "texts/hello.txt") == "hello\n"
    assert cli.run("bucket", "cat", "b", "stdin.txt").stdout == b"from stdin"

    cli.run("bucket", "pull", "b", "2024", str(tmp_path / "restored"))
    for p in album.rglob("*"):
        if p.is_file():
            assert (tmp_path / "restored" / p.relative_to(album)).read_bytes() == p.read_bytes()
    cli.run("bucket", "pull", "b", "hello.txt", str(tmp_path / "h.txt"))
    assert (tmp_path / "h.txt").read_text() == "hello\n"
    assert cli.run("bucket", "pull", "b", "stdin.txt", "-").stdout == b"from stdin"

    cli.run("bucket", "mv", "b", "hello.txt", "renamed.txt")
    root = cli.json("bucket", "mv", "b", "renamed.txt", "texts")["root"]
    assert "renamed.txt" in cli.out("bucket", "ls", "b", "texts")
    assert cli.out("bucket", "root", "b").strip() == root["path"]

    removed = cli.json("bucket", "rm", "b", "texts", "stdin.txt")
    assert removed["removed"] == ["texts", "stdin.txt"]
    assert "texts" not in {e["name"] for e in cli.json("bucket", "ls", "b")}

    links = cli.json("bucket", "links", "b")
    key = cli.json("bucket", "root", "b")["key"]
    assert key in links["url"]

    assert "--yes" in cli.err("bucket", "rm", "b", code=2)
    cli.run("bucket", "rm", "b", "--yes")
    assert "no bucket named 'b'" in cli.err("bucket", "root", "b")


def test_key_flag_and_env_replace_bucket_argument(cli: CLI) -> None:
    key = cli.out("bucket", "create", "k").strip()
    cli.run("bucket", "push", "--key", key, "-", "a.txt", input=b"A")
    assert cli.out("bucket", "cat", "a.txt", env={"BUCK_KEY": key}) == "A"
    assert cli.out("bucket", "root", "--key", key).startswith("/ipfs/")


def test_fast_forward_flag(cli: CLI) -> None:
    cli.run("bucket", "create", "ff")
    old = cli.out("bucket", "root", "ff").strip()
    cli.run("bucket", "push", "ff", "-", "a", input=b"1", env=None)
    msg = cli.err("bucket", "push", "ff", "-", "b", "--root", old, input=b"2")
    assert "non-fast-forward" in msg


def test_one_line_errors(cli: CLI, tmp_path: Path) -> None:
    cli.run("bucket", "create", "dup")
    cli.run("bucket", "create", "dup")
    msg = cli.err("bucket", "ls", "dup")
    assert "ambiguous" in msg and msg.count("bafzb") == 2
    cli.run("bucket", "create", "e")
    assert "missing.txt" in cli.err("bucket", "cat", "e", "missing.txt")
    assert "no such file" in cli.err("bucket", "push", "e", str(tmp_path / "nope"))
    assert "not a thread ID" in cli.err("bucket", "ls", "--thread", "garbage")
    assert "BUCKET" in cli.err("bucket", "cat", code=2)
    # Bad paths are refused by the hub with its own message, and change nothing.
    root = cli.out("bucket", "root", "e")
    assert ".." in cli.err("bucket", "push", "e", "-", "a/../../x", input=b"x")
    assert ".textileseed" in cli.err("bucket", "push", "e", "-", "d/.textileseed", input=b"x")
    assert "4096" in cli.err("bucket", "push", "e", "-", "p" * 5000, input=b"x")
    assert cli.out("bucket", "root", "e") == root


def test_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    cli = CLI(tmp_path, dead)
    msg = cli.err("bucket", "create", "x")
    assert f"cannot reach the hub at {dead}" in msg and "bucketfs hub" in msg
    msg = cli.err("thread", "ls", "--api", dead)
    assert "cannot reach the hub" in msg


def _run_with_tty_stderr(cli: CLI, *args: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (as a person would see it)."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    # A fresh pty is 0x0 characters, and tqdm draws nothing that narrow; size it like a terminal.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []

    def reader() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=reader)
    t.start()
    proc = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", *args],
        stderr=slave,
        stdout=subprocess.DEVNULL,
        cwd=cli.cwd,
        env=cli.env,
        timeout=120,
    )
    os.close(slave)
    t.join(timeout=30)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bars_only_on_a_terminal(cli: CLI) -> None:
    cli.run("bucket", "create", "big")
    (cli.cwd / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    code, tty_err = _run_with_tty_stderr(cli, "bucket", "push", "big", "big.bin")
    assert code == 0 and "big.bin" in tty_err and "%|" in tty_err  # a tqdm bar
    code, tty_err = _run_with_tty_stderr(cli, "bucket", "pull", "big", "big.bin", "copy.bin")
    assert code == 0 and "%|" in tty_err
    assert (cli.cwd / "copy.bin").read_bytes() == (cli.cwd / "big.bin").read_bytes()
    # Not a terminal: no bar at all.
    assert cli.run("bucket", "push", "big", "big.bin", "again.bin").stderr == b""
    # A folder pull shows one bar for all its files (pulled several at a time).
    folder = cli.cwd / "folder"
    folder.mkdir()
    for i in range(3):
        (folder / f"part{i}").write_bytes(os.urandom(2 * 1024 * 1024))
    cli.run("bucket", "push", "big", "folder", "folder")
    code, tty_err = _run_with_tty_stderr(cli, "bucket", "pull", "big", "folder", "copy")
    assert code == 0 and "%|" in tty_err
    for i in range(3):
        assert (cli.cwd / "copy" / f"part{i}").read_bytes() == (folder / f"part{i}").read_bytes()


def test_push_and_pull_keep_mode_and_mtime(cli: CLI, tmp_path: Path) -> None:
    cli.run("bucket", "create", "attrs")
    tree = cli.cwd / "tree"
    tree.mkdir()
    one, two = tree / "one.sh", tree / "two.txt"
    one.write_text("#!/bin/sh\n")
    two.write_text("two\n")
    os.chmod(one, 0o750)
    os.chmod(two, 0o604)
    os.utime(one, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    cli.run("bucket", "push", "attrs", "tree", "t")
    cli.run("bucket", "push", "attrs", str(two), "single.txt")
    cli.run("bucket", "pull", "attrs", "t", str(tmp_path / "back"))
    cli.run("bucket", "pull", "attrs", "single.txt", str(tmp_path / "single.txt"))
    back = tmp_path / "back"
    assert (back / "one.sh").stat().st_mode & 0o7777 == 0o750
    assert (back / "two.txt").stat().st_mode & 0o7777 == 0o604
    assert (back / "one.sh").stat().st_mtime_ns == 1_600_000_000_123_456_789
    assert (tmp_path / "single.txt").stat().st_mode & 0o7777 == 0o604


def test_cat_into_a_closed_pipe_is_quiet(cli: CLI) -> None:
    cli.run("bucket", "create", "pipe")
    cli.run("bucket", "push", "pipe", "-", "big", input=os.urandom(3 * 1024 * 1024))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bucketfs.cli", "bucket", "cat", "pipe", "big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cli.cwd,
        env=cli.env,
    )
    assert proc.stdout is not None and len(proc.stdout.read(10)) == 10
    proc.stdout.close()  # like `| head -c 10`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b""


def _peak_rss_kib(cli: CLI, *args: str) -> int:
    """Run the CLI in a child that reports its own peak RSS (KiB) as the last stderr line."""
    code = (
        "import resource, sys\n"
        "from bucketfs.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, cwd=cli.cwd, env=cli.env,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.decode().strip().splitlines()[-1])


def test_memory_stays_bounded_whatever_the_file_size(cli: CLI) -> None:
    """Pushing and pulling 96 MiB costs about what 4 MiB does: the CLI streams."""
    cli.run("bucket", "create", "mem")
    peaks = {}
    for mib in (4, 96):
        src = cli.cwd / f"f{mib}"
        with open(src, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1024 * 1024))
        push = _peak_rss_kib(cli, "bucket", "push", "mem", src.name)
        pull = _peak_rss_kib(cli, "bucket", "pull", "mem", src.name, f"back{mib}")
        peaks[mib] = max(push, pull)
        assert (cli.cwd / f"back{mib}").stat().st_size == mib * 1024 * 1024
    # 92 MiB more data may not cost more than 32 MiB more memory (it costs ~5 here).
    assert peaks[96] - peaks[4] < 32 * 1024, peaks
