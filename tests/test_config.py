"""Configuration: precedence flags > env > file > defaults, 0600 secrets, atomic saves."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucketfs import config
from bucketfs.errors import UserError

pytestmark = pytest.mark.timeout(60)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_when_no_file(tmp_path: Path) -> None:
    cfg = config.load(tmp_path / "missing.toml", env={})
    assert cfg.api == "127.0.0.1:3006"
    assert cfg.thread == "" and cfg.key == "" and cfg.api_key == ""
    assert cfg.mount.cache_size == 10 * 1024**3
    assert cfg.origin == {}


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        'api = "10.0.0.1:1"\nthread = "tfile"\nkey = "kfile"\n[mount]\npoll = 7\n',
    )
    cfg = config.load(path, env={})
    assert (cfg.api, cfg.thread, cfg.key, cfg.mount.poll) == ("10.0.0.1:1", "tfile", "kfile", 7.0)
    assert cfg.origin["api"] == "file"

    env = {"BUCK_API": "10.0.0.2:2", "BUCK_THREAD": "tenv", "BUCKETFS_POLL": "3.5"}
    cfg = config.load(path, env=env)
    assert (cfg.api, cfg.thread, cfg.key, cfg.mount.poll) == ("10.0.0.2:2", "tenv", "kfile", 3.5)
    assert cfg.origin["api"] == "env"

    cfg = config.load(path, env=env, overrides={"api": "10.0.0.3:3", "thread": None})
    assert (cfg.api, cfg.thread) == ("10.0.0.3:3", "tenv")
    assert cfg.origin["api"] == "flag"


def test_bucketfs_env_beats_buck_env(tmp_path: Path) -> None:
    env = {"BUCK_KEY": "from-buck", "BUCKETFS_KEY": "from-bucketfs"}
    assert config.load(tmp_path / "none.toml", env=env).key == "from-bucketfs"
    assert config.load(tmp_path / "none.toml", env={"BUCK_KEY": "b"}).key == "b"


def test_bucketfs_config_env_points_elsewhere(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere.toml", 'api = "192.168.1.1:9"\n')
    cfg = config.load(env={"BUCKETFS_CONFIG": str(path)})
    assert cfg.api == "192.168.1.1:9" and cfg.path == path


@pytest.mark.parametrize(
    "text, needle",
    [
        ("api = [", "not valid TOML"),
        ('api = "nohostport"\n', "HOST:PORT"),
        ('[mount]\ncache_size = "lots"\n', "mount.cache_size"),
        ("[mount]\npoll = -1\n", "mount.poll"),
        ('insecure = "maybe"\n', "insecure"),
    ],
)
def test_bad_file_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(UserError) as info:
        config.load(path, env={})
    assert needle in info.value.message and "\n" not in info.value.message


def test_unknown_keys_are_warned_not_fatal(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "c.toml", 'bogus = 1\napi = "127.0.0.1:7"\n[mount]\nfuture = true\n')
    cfg = config.load(path, env={})
    assert cfg.api == "127.0.0.1:7"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "bogus" in warned and "mount.future" in warned


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="BUCKETFS_CACHE_SIZE"):
        config.load(tmp_path / "x.toml", env={"BUCKETFS_CACHE_SIZE": "-3G"})


@pytest.mark.parametrize(
    "text, expected",
    [("0", 0), ("512M", 512 * 2**20), ("10G", 10 * 2**30), ("1.5GiB", 3 * 2**29), ("4k", 4096)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert config.parse_size(text) == expected


def test_secret_file_mode_is_enforced(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret", "bsecret\n")
    os.chmod(secret, 0o644)
    path = write(tmp_path / "c.toml", 'api_secret_file = "secret"\n')
    cfg = config.load(path, env={})
    with pytest.raises(UserError) as info:
        cfg.api_secret()
    msg = info.value.message
    assert str(secret) in msg and f"chmod 600 {secret}" in msg and "\n" not in msg
    os.chmod(secret, 0o600)
    assert cfg.api_secret() == "bsecret"


def test_missing_secret_file_is_clear(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path / "c.toml", 'api_secret_file = "/nonexistent/s"\n'), env={})
    with pytest.raises(UserError, match="does not exist"):
        cfg.api_secret()


def test_update_file_keeps_other_keys_and_validates(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", 'api = "127.0.0.1:9"\n[mount]\npoll = 4.0\n')
    config.update_file({"thread": "tid", "mount.writeback_delay": 1.5}, path)
    data = tomllib.loads(path.read_text())
    assert data == {
        "api": "127.0.0.1:9",
        "thread": "tid",
        "mount": {"poll": 4.0, "writeback_delay": 1.5},
    }
    before = path.read_text()
    with pytest.raises(UserError):
        config.update_file({"api": "not-an-address"}, path)
    assert path.read_text() == before  # bad input changes nothing


def test_save_round_trips(tmp_path: Path) -> None:
    cfg = config.load(tmp_path / "c.toml", env={})
    cfg.thread = "t1"
    cfg.tls.ca = "ca.pem"
    cfg.mount.cache_size = 123
    cfg.save()
    again = config.load(tmp_path / "c.toml", env={})
    assert (again.thread, again.tls.ca, again.mount.cache_size) == ("t1", "ca.pem", 123)
    assert not list(tmp_path.glob(".c.toml.*"))  # no temp files left behind


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"

    def writer(i: int) -> None:
        for j in range(20):
            config.update_file({"mount.poll": float(i)}, path)
            config.update_file({"key": f"k{i}-{j}"}, path)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = tomllib.loads(path.read_text())  # still a whole, parseable file
    assert set(data) == {"mount", "key"}


def test_write_hub_credentials(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    secret_path = config.write_hub_credentials(
        "127.0.0.1:4000", "bkey", "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy", config_path=path
    )
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert secret_path.parent == path.parent
    cfg = config.load(path, env={})
    assert (cfg.api, cfg.api_key) == ("127.0.0.1:4000", "bkey")
    assert cfg.api_secret() == "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy"
    # A second start with a new key replaces both, atomically.
    config.write_hub_credentials("127.0.0.1:4000", "bkey2", "bnew", config_path=path)
    cfg = config.load(path, env={})
    assert cfg.api_key == "bkey2" and cfg.api_secret() == "bnew"


def test_loose_secret_refused_through_cli(tmp_path: Path) -> None:
    """End to end: the CLI prints one line naming the file and the chmod fix, and exits 1."""
    secret = write(tmp_path / "secret", "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfy\n")
    os.chmod(secret, 0o640)
    cfg = write(tmp_path / "c.toml", f'api_secret_file = "{secret}"\napi_key = "bk"\n')
    env = dict(os.environ, BUCKETFS_CONFIG=str(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "bucketfs.cli", "bucket", "ls"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"chmod 600 {secret}" in lines[0]


_FIELDS = {"api": "BUCK_API", "thread": "BUCK_THREAD", "key": "BUCK_KEY"}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    layers=st.dictionaries(
        st.sampled_from(sorted(_FIELDS)),
        st.tuples(st.booleans(), st.booleans(), st.booleans()),  # in file, in env, as flag
    )
)
def test_precedence_property(tmp_path: Path, layers: dict[str, tuple[bool, bool, bool]]) -> None:
    """For any mix of sources, each field takes the value of its highest-precedence source."""

    def value(field: str, source: str) -> str:
        rank = {"file": 1, "env": 2, "flag": 3}[source]
        return f"10.0.0.{rank}:300{rank}" if field == "api" else f"{field}-{source}"

    file_lines, env, flags = [], {}, {}
    for field, (in_file, in_env, as_flag) in layers.items():
        if in_file:
            file_lines.append(f'{field} = "{value(field, "file")}"')
        if in_env:
            env[_FIELDS[field]] = value(field, "env")
        if as_flag:
            flags[field] = value(field, "flag")
    path = write(tmp_path / "p.toml", "\n".join(file_lines) + "\n")
    cfg = config.load(path, env=env, overrides=flags)
    defaults = config.Config(path=path)
    for field in _FIELDS:
        in_file, in_env, as_flag = layers.get(field, (False, False, False))
        expected = (
            value(field, "flag") if as_flag else value(field, "env") if in_env
            else value(field, "file") if in_file else getattr(defaults, field)
        )  # fmt: skip
        assert getattr(cfg, field) == expected


def test_relative_secret_paths(tmp_path: Path, monkeypatch) -> None:
    """From the file: beside the config file; from a flag or the environment: from the cwd."""
    conf_dir, cwd = tmp_path / "conf", tmp_path / "cwd"
    conf_dir.mkdir()
    cwd.mkdir()
    for d in (conf_dir, cwd):
        (d / "s").write_text(f"secret-in-{d.name}")
        os.chmod(d / "s", 0o600)
    path = write(conf_dir / "c.toml", 'api_secret_file = "s"\n')
    monkeypatch.chdir(cwd)
    assert config.load(path, env={}).api_secret() == "secret-in-conf"
    assert config.load(path, env={"BUCKETFS_API_SECRET_FILE": "s"}).api_secret() == "secret-in-cwd"
    cfg = config.load(path, env={}, overrides={"api_secret_file": "s"})
    assert cfg.api_secret() == "secret-in-cwd"
