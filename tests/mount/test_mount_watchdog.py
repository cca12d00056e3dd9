"""The suite's FUSE watchdog (tests/conftest.py) ends a call that a hung daemon never answers.

Real hub, real mount: the daemon is stopped (SIGSTOP), so a lookup through the mount waits in
the kernel, where pytest-timeout's SIGALRM cannot end it. The watchdog aborts the connection
shortly before the test's timeout; the call fails (ECONNABORTED) instead of hanging the run.
"""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest
from mountproc import mounted, new_bucket


@pytest.mark.timeout(20)  # the watchdog fires at 16 s
def test_a_call_to_a_stopped_daemon_ends_before_the_timeout(
    hub, thread, tmp_path  # noqa: ANN001
) -> None:
    _, key = new_bucket(hub, "watchdog", thread=thread)
    with mounted(hub, tmp_path, key, thread=thread, umount=False) as m:
        assert m.pid is not None
        os.kill(m.pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(OSError) as err:
                os.stat(m.path / "never-looked-up")
            assert err.value.errno in (errno.ECONNABORTED, errno.ENOTCONN)
            assert 10 < time.monotonic() - start < 20
        finally:
            os.kill(m.pid, signal.SIGKILL)  # (the daemon of this test only)
