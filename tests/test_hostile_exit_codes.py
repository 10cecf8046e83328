"""Exit codes everywhere: 143 for SIGTERM, 130 for Ctrl-C (generate, batch and serve alike)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from talkbridge.interrupts import Terminated


class _InterruptingBackend:
    """Runs no job: the first row raises what the signal handler raises."""

    name = "interrupting"
    slots = 1
    inline = True

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def run_row(self, row, plan, stop):
        raise self.error

    def close(self) -> None:
        pass


@pytest.mark.parametrize("error,code", [(Terminated("signal 15"), 143), (KeyboardInterrupt(), 130)])
def test_batch_exits_143_on_sigterm_and_130_on_ctrl_c(tmp_path, monkeypatch, error, code):
    from talkbridge.batch import runner
    from talkbridge.cli import main
    from tests.speech import speech_like, write_wav

    write_wav(tmp_path / "a.wav", speech_like(0.3))
    (tmp_path / "lines.csv").write_text("audio\na.wav\n")
    real = runner.BatchRun.__init__

    def with_backend(self, rows, output_dir, backend, **kwargs):
        backend.close()
        real(self, rows, output_dir, _InterruptingBackend(error), **kwargs)

    monkeypatch.setattr(runner.BatchRun, "__init__", with_backend)
    assert main(["batch", str(tmp_path / "lines.csv"), "-o", str(tmp_path / "out")]) == code
    assert (tmp_path / "out" / "batch_report.json").exists()


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_serve_exits_143_on_sigterm_and_130_on_ctrl_c(monkeypatch, signum, code):
    from talkbridge.bridge import server as server_module
    from talkbridge.bridge.synthetic import SyntheticRunner
    from talkbridge.bridge import workers
    from talkbridge.cli import main

    class InProcess:
        """The synthetic runner where `serve` would start worker processes."""

        def __init__(self, *args, **kwargs) -> None:
            pass

        def start(self):
            return SyntheticRunner()

    monkeypatch.setattr(workers, "ProcessRunner", InProcess)
    real_start = server_module.Server.start

    def start_then_signal(self):
        started = real_start(self)
        threading.Timer(0.3, os.kill, (os.getpid(), signum)).start()
        return started

    monkeypatch.setattr(server_module.Server, "start", start_then_signal)
    assert main(["serve", "--bind", "tcp://127.0.0.1:0"]) == code
