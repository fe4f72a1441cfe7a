"""The Prefect backend's own judgement: a run whose process died is crashed (the flow runs themselves are
tested end to end with a real server)."""

from __future__ import annotations


def test_a_run_whose_process_is_gone_from_this_host_counts_as_crashed():
    import os
    import socket

    from boothline.service.prefect_backend import process_gone

    here = socket.gethostname()
    assert not process_gone(f"{here}:{os.getpid()}")
    assert process_gone(f"{here}:{2**22 + 12345}")  # above Linux's default pid_max: never a live process
    assert not process_gone("another-host:1") and not process_gone(None) and not process_gone("garbage")
