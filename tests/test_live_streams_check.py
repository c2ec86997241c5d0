"""``simrouter live --streams`` on a run whose answers do not stream is refused before
anything is sent: a ConfigError naming ``--streams``, a non-zero exit, no connection to
the target, no file written."""

from __future__ import annotations

import socket

import pytest

from simrouter.cli import EXIT_CONFIG, main


@pytest.mark.parametrize(
    "overrides",
    [[], ['request.protocol="openai-chat"', 'request.model="m"', "request.stream=false"]],
    ids=["simrouter-protocol", "openai-not-streamed"],
)
def test_streams_on_a_run_that_does_not_stream_is_refused_before_sending(tmp_path, capsys, overrides):
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(16)  # a client's connect would be queued here, accepted or not
    target.setblocking(False)
    port = target.getsockname()[1]
    streams = tmp_path / "streams.json"
    try:
        argv = ["live", "baseline", "--target", f"http://127.0.0.1:{port}", "--streams", str(streams), "--set", "duration=2"]
        for override in overrides:
            argv += ["--set", override]
        assert main(argv) == EXIT_CONFIG
        with pytest.raises(BlockingIOError):
            target.accept()  # nobody connected
    finally:
        target.close()
    err = capsys.readouterr().err
    assert "--streams" in err and "request.stream = true" in err
    assert not streams.exists()
