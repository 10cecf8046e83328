"""The sidecar over real sockets (127.0.0.1 and ipc) with the deterministic synthetic runner.

Behaviour that must not depend on engine speed: streaming, cancel, fairness, back-pressure,
heartbeats, idempotent retries and failure reporting. Every test stops its server and clients.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner, synthetic_chunk, synthetic_frames

pytestmark = pytest.mark.timeout(60)

AUDIO = np.zeros(1600, np.float32)  # the synthetic runner ignores audio, but a submit must carry some


@pytest.fixture(autouse=True)
def no_threads_left_behind():
    """Every server and client a test starts must be fully stopped when it ends."""
    yield
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("talkbridge-")], timeout=5.0), [
        t.name for t in threading.enumerate()
    ]


@contextlib.contextmanager
def serve(runner: SyntheticRunner, bind: str = "tcp://127.0.0.1:*", **options):
    server = Server(runner, ServerConfig(bind=bind, **options)).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def connect(server: Server, **options):
    client = Client(server.address, **options)
    try:
        client.connect(timeout=5)
        yield client
    finally:
        client.close()


def wait_for(condition, timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_a_job_streams_chunks_that_join_to_the_in_process_result(transport, tmp_path):
    bind = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/sidecar.sock"
    runner = SyntheticRunner()
    with serve(runner, bind=bind) as server, connect(server) as client:
        assert client.welcome["capabilities"]["engines"] == ["synthetic"]
        result = client.submit("synthetic", audio=AUDIO, options={"n_frames": 57, "chunk_frames": 8, "seed": 3}, render_size=64).result()
    kinds = [event.type for event in result.events]
    assert kinds[0] == p.ACCEPTED and kinds[-1] == p.DONE and kinds.count(p.CHUNK) == 8
    assert kinds.count(p.INFO) == 1 and kinds.index(p.INFO) < kinds.index(p.CHUNK)  # the facts once, first
    expected = synthetic_chunk(0, 57, seed=3)
    assert np.array_equal(result.array("pose"), expected.pose)
    assert np.array_equal(result.array("blink"), expected.blink)
    assert np.array_equal(result.array("expression"), expected.expression)
    assert np.array_equal(result.array("frames"), synthetic_frames(0, 57, 64))
    assert [c.body["start"] for c in result.chunks] == list(range(0, 57, 8))
    assert result.final.body == {"n_frames": 57, "n_chunks": 8}
    assert result.info.engine == "synthetic" and result.info.n_frames == 57 and result.info.frame_size == (64, 64)
    step = result.chunks[1].step()
    assert step.chunk.start == 8 and step.chunk.n_frames == 8
    np.testing.assert_array_equal(step.frames, synthetic_frames(8, 8, 64))


def test_the_polling_api_never_blocks_and_delivers_the_same_stream():
    runner = SyntheticRunner()
    with serve(runner) as server, connect(server, credit=2) as client:
        job_id = client.submit_nowait("synthetic", audio=AUDIO, options={"n_frames": 40, "chunk_frames": 5})
        events = []
        deadline = time.monotonic() + 10
        while not (events and events[-1].terminal) and time.monotonic() < deadline:
            started = time.perf_counter()
            events += [e for e in client.poll_events() if e.job_id == job_id]
            assert time.perf_counter() - started < 0.25  # a Blender timer callback must return at once (slack for a busy CI)
            time.sleep(0.005)
    assert events[-1].type == p.DONE
    pose = np.concatenate([e.arrays["pose"] for e in events if e.type == p.CHUNK])
    assert np.array_equal(pose, synthetic_chunk(0, 40).pose)


class CancelWatchingRunner(SyntheticRunner):
    """Counts the outputs a job yields after its cancel flag was set: the work done past a cancel.

    Counted where the flag is read, so the count does not depend on when the test thread looks
    (reading ``produced`` when the client sees a chunk raced the server's worker thread).
    """

    def __init__(self) -> None:
        super().__init__()
        self.after_cancel: dict[str, int] = {}

    def run(self, job, device, cancel):
        stream = super().run(job, device, cancel)
        try:
            for output in stream:
                if cancel.is_set():
                    self.after_cancel[job.job_id] = self.after_cancel.get(job.job_id, 0) + 1
                yield output
        finally:
            stream.close()


def test_cancel_mid_job_stops_work_within_one_chunk():
    runner = CancelWatchingRunner()
    with serve(runner) as server, connect(server) as client:
        handle = client.submit("synthetic", audio=AUDIO, options={"n_frames": 2000, "chunk_frames": 10, "delay_s": 0.03})
        cancelled_at = None
        chunks_seen = 0
        for event in handle:
            if event.type == p.CHUNK:
                chunks_seen += 1
                if chunks_seen == 3:
                    cancelled_at = time.monotonic()
                    handle.cancel()
            last = event
        assert last.type == p.CANCELLED
        assert time.monotonic() - cancelled_at < 1.0
        assert runner.after_cancel.get(handle.job_id, 0) <= 1  # at most the chunk in progress
        assert handle.job_id in runner.cancelled and handle.job_id not in runner.finished
        # The server settles its state before the terminal message leaves, so this holds the moment
        # the client has seen `cancelled` (it used to be updated just after sending: a race).
        assert server.stats["jobs_done"] == 1 and not server._jobs


def test_cancelling_a_queued_job_answers_at_once_and_it_never_starts():
    runner = SyntheticRunner(gates={"first": threading.Event()})
    with serve(runner) as server, connect(server) as client:
        first = client.submit("synthetic", audio=AUDIO, options={"hold": "first", "n_frames": 5})
        queued = client.submit("synthetic", audio=AUDIO, options={"n_frames": 5})
        assert wait_for(lambda: runner.started == [first.job_id])
        queued.cancel()
        events = list(queued)
        assert events[-1].type == p.CANCELLED
        runner.gates["first"].set()
        assert list(first)[-1].type == p.DONE
    assert queued.job_id not in runner.started


def test_hello_ping_and_cancel_answer_promptly_during_a_long_chunk():
    runner = SyntheticRunner()
    with serve(runner) as server, connect(server) as client:
        handle = client.submit("synthetic", audio=AUDIO, options={"n_frames": 20, "chunk_frames": 10, "delay_s": 1.5})
        assert wait_for(lambda: handle.job_id in runner.started)
        assert client.ping(timeout=1.0) < 0.25
        with connect(server) as other:
            assert other.welcome["version"] == p.PROTOCOL_VERSION
        started = time.monotonic()
        handle.cancel()
        assert list(handle)[-1].type == p.CANCELLED
        assert time.monotonic() - started < 2.0  # the chunk in progress, no more


def test_jobs_from_several_clients_take_turns_on_a_device():
    runner = SyntheticRunner(gates={"gate": threading.Event()})
    with serve(runner) as server, connect(server) as alice, connect(server) as bob:
        options = {"n_frames": 4, "chunk_frames": 2}
        a = [alice.submit("synthetic", audio=AUDIO, options={**options, "hold": "gate"})]
        a += [alice.submit("synthetic", audio=AUDIO, options=options) for _ in range(2)]
        assert wait_for(lambda: len(runner.started) == 1)
        b = [bob.submit("synthetic", audio=AUDIO, options=options) for _ in range(3)]
        for handle in b:  # every job is queued before the device frees up
            assert next(iter(handle)).type == p.ACCEPTED
        runner.gates["gate"].set()
        for handle in a + b:
            assert list(handle)[-1].type == p.DONE
    ids = {h.job_id: name for name, h in zip(["a1", "a2", "a3", "b1", "b2", "b3"], a + b)}
    assert [ids[j] for j in runner.started] == ["a1", "b1", "a2", "b2", "a3", "b3"]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def test_a_paused_client_keeps_server_memory_flat():
    runner = SyntheticRunner()
    with serve(runner, outbox_chunks=2) as server, connect(server) as client:
        # 200 chunks of ten 512x512 frames: 1.5 GB if anything buffered the whole video.
        job_id = client.submit_nowait("synthetic", audio=AUDIO, credit=2, render_size=512, options={"n_frames": 2000, "chunk_frames": 10})
        assert wait_for(lambda: runner.produced.get(job_id, 0) >= 4)
        time.sleep(0.3)
        produced, rss = runner.produced[job_id], _rss_bytes()
        time.sleep(1.0)
        assert runner.produced[job_id] == produced <= 2 + 2 + 1  # credit + outbox + the one waiting for room
        assert _rss_bytes() - rss < 40 * 2**20
        client.poll_events()  # taking the chunks returns credit: the stream moves again
        assert wait_for(lambda: runner.produced[job_id] > produced)
        client.cancel(job_id)
        assert wait_for(lambda: any(e.type == p.CANCELLED for e in client.poll_events()))


def test_a_silent_client_is_presumed_dead_and_its_job_cancelled():
    runner = SyntheticRunner()
    with serve(runner, client_timeout_s=0.5) as server:
        context = zmq.Context.instance()
        dealer = context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(server.address)
        submit = p.Message(p.SUBMIT, "orphan", {"engine": "synthetic", "options": {"n_frames": 10000, "delay_s": 0.01}}, {"audio_pcm": AUDIO})
        dealer.send_multipart(p.encode(submit))
        assert wait_for(lambda: "orphan" in runner.started)
        dealer.close()  # gone without a word: no cancel, no more heartbeats
        assert wait_for(lambda: "orphan" in runner.cancelled, timeout=3.0)
        assert wait_for(lambda: not server._jobs and not server._peers, timeout=2.0)


def test_a_repeated_submit_is_the_same_job():
    runner = SyntheticRunner(gates={"g": threading.Event()})
    with serve(runner) as server:
        dealer = zmq.Context.instance().socket(zmq.DEALER)
        dealer.linger = 0
        dealer.rcvtimeo = 3000
        dealer.connect(server.address)
        try:
            submit = p.encode(p.Message(p.SUBMIT, "same", {"engine": "synthetic", "options": {"n_frames": 20, "hold": "g"}}, {"audio_pcm": AUDIO}))
            dealer.send_multipart(submit)
            dealer.send_multipart(submit)  # a retry: its answer was slow
            answers = []
            while len(answers) < 2:
                answer = p.decode(dealer.recv_multipart())
                if answer.type != p.PROGRESS:
                    answers.append(answer)
            first, second = answers
            assert first.type == second.type == p.ACCEPTED and second.body["duplicate"] is True
            runner.gates["g"].set()
            kinds = []
            while not kinds or kinds[-1] != p.DONE:
                kinds.append(p.decode(dealer.recv_multipart()).type)
            dealer.send_multipart(submit)  # a retry arriving after the job ended
            late = p.decode(dealer.recv_multipart())
            assert late.type == p.ACCEPTED and late.body == {"position": 0, "duplicate": True, "state": "finished"}
        finally:
            dealer.close()
    assert runner.started == ["same"] and kinds.count(p.CHUNK) == 2


def test_an_engine_failure_is_an_error_event_and_the_server_carries_on():
    runner = SyntheticRunner()
    with serve(runner) as server, connect(server) as client:
        failed = client.submit("synthetic", audio=AUDIO, options={"n_frames": 30, "fail_at": 1}).result()
        assert failed.final.type == p.ERROR and failed.final.code == p.E_ENGINE_FAILED
        assert failed.final.body["retryable"] is True and "synthetic failure" in failed.final.body["message"]
        assert len(failed.chunks) == 1
        bad = client.submit("synthetic", audio=AUDIO, options={"n_frames": -3}).result()
        assert bad.final.code == p.E_BAD_INPUT and bad.final.body["retryable"] is False
        assert client.submit("synthetic", audio=AUDIO).result().final.type == p.DONE


def test_a_stopping_server_tells_its_clients():
    runner = SyntheticRunner()
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:*")).start()
    client = Client(server.address)
    try:
        client.connect()
        handle = client.submit("synthetic", audio=AUDIO, options={"n_frames": 100000, "chunk_frames": 10, "delay_s": 0.02})
        events = iter(handle)
        assert next(events).type == p.ACCEPTED
        stopping = threading.Thread(target=server.stop)
        stopped_at = time.monotonic()
        stopping.start()
        final = [e for e in events][-1]
        assert final.type == p.ERROR and final.code == p.E_SHUTTING_DOWN and final.body["retryable"]
        assert time.monotonic() - stopped_at < 1.0
        stopping.join()
    finally:
        client.close()


def test_the_client_resends_an_unanswered_submit_with_the_same_job_id():
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    seen: list[tuple[str, str | None]] = []
    finished = threading.Event()

    def lossy_server():  # ignores the first submit, as if it was lost, then behaves
        deadline = time.monotonic() + 10
        submits = 0
        while time.monotonic() < deadline and not finished.is_set():
            if not router.poll(20):
                continue
            identity, *frames = router.recv_multipart()
            message = p.decode(frames)
            seen.append((message.type, message.job_id))
            reply = None
            if message.type == p.HELLO:
                reply = p.Message(p.WELCOME, body={"version": 1, "server": "fake", "capabilities": {}, "heartbeat_s": 0.5, "limits": {}})
            elif message.type == p.PING:
                reply = p.Message(p.PONG)
            elif message.type == p.SUBMIT:
                submits += 1
                if submits == 2:
                    router.send_multipart([identity, *p.encode(p.Message(p.ACCEPTED, message.job_id, {"position": 0}))])
                    reply = p.Message(p.DONE, message.job_id, {"n_frames": 0, "n_chunks": 0})
            if reply is not None:
                router.send_multipart([identity, *p.encode(reply)])

    thread = threading.Thread(target=lossy_server)
    thread.start()
    client = Client(f"tcp://127.0.0.1:{port}", retry_s=0.3)
    try:
        client.connect()
        events = list(client.submit("synthetic", audio=AUDIO, job_id="retry-me"))
        time.sleep(0.8)  # long enough for another (wrong) retry to show up
    finally:
        finished.set()
        client.close()
        thread.join()
        router.close()
        context.term()
    assert [e.type for e in events] == [p.ACCEPTED, p.DONE]
    assert [s for s in seen if s[0] == p.SUBMIT] == [(p.SUBMIT, "retry-me")] * 2


class CountingEngine:
    """A registered engine that counts how often it is built and records what it was asked."""

    name = "counting"
    version = "0"
    built: list[str] = []

    def __init__(self, device: str = "unset", scale: float = 1.0) -> None:
        CountingEngine.built.append(device)
        self.scale = scale
        self.requests = []

    def stream_motion(self, request):
        self.requests.append(request)
        n = int(np.asarray(request.audio).size // 160)
        for start in range(0, n, request.chunk_frames):
            chunk = synthetic_chunk(start, min(request.chunk_frames, n - start))
            yield type(chunk)(chunk.start, chunk.pose * self.scale, chunk.blink)


def test_engines_are_built_once_per_device_and_get_the_job_inputs(monkeypatch, tmp_path):
    from talkbridge.bridge.jobs import EngineRunner
    from talkbridge.core import engine as engine_module

    monkeypatch.setitem(engine_module.ENGINE_FACTORIES, "counting", f"{__name__}:CountingEngine")
    monkeypatch.setattr(CountingEngine, "built", [])
    runner = EngineRunner({"counting": {"scale": 2.0}})
    image = tmp_path / "portrait.png"
    image.write_bytes(b"\x89PNG fake")
    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=("cpu",))) as server, connect(server) as client:
        assert "counting" in client.welcome["capabilities"]["engines"]
        results = [
            client.submit("counting", audio=np.ones(1600, np.float32), image=image, options={"chunk_frames": 4, "seed": 9}).result()
            for _ in range(2)
        ]
        bad = client.submit("counting", audio=np.ones(160, np.float32), options={"seed": "nine"}).result()
    assert CountingEngine.built == ["cpu"]  # one build, reused by every job on that device
    for result in results:
        assert result.final.type == p.DONE and result.final.body["n_frames"] == 10
        assert np.allclose(result.array("pose"), 2.0 * synthetic_chunk(0, 10).pose)
    engine = runner.engine("counting", "cpu")
    request = engine.requests[0]
    assert request.seed == 9 and request.chunk_frames == 4 and request.image.suffix == ".png"
    assert not request.image.exists()  # the job's temporary inputs are gone afterwards
    assert bad.final.code == p.E_BAD_INPUT and "'seed'" in bad.final.body["message"]


def _raw_dealer(server: Server) -> zmq.Socket:
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.rcvtimeo = 3000
    dealer.connect(server.address)
    return dealer


def test_refusals_name_their_reason():
    runner = SyntheticRunner(gates={"g": threading.Event()})
    with serve(runner, max_jobs_per_client=1) as server:
        owner, other = _raw_dealer(server), _raw_dealer(server)
        try:
            owner.send_multipart(p.encode(p.Message(p.HELLO, body={"versions": [99, 100]})))
            refused = p.decode(owner.recv_multipart())
            assert refused.type == p.ERROR and refused.body["code"] == p.E_UNSUPPORTED_VERSION
            submit = p.Message(p.SUBMIT, "mine", {"engine": "synthetic", "options": {"hold": "g"}}, {"audio_pcm": AUDIO})
            owner.send_multipart(p.encode(submit))
            assert p.decode(owner.recv_multipart()).type == p.ACCEPTED
            other.send_multipart(p.encode(submit))  # same job id from someone else
            stolen = p.decode(other.recv_multipart())
            assert stolen.body["code"] == p.E_JOB_ID_IN_USE and stolen.job_id == "mine"
            other.send_multipart(p.encode(p.Message(p.CANCEL, "mine")))  # and they cannot cancel it either
            assert p.decode(other.recv_multipart()).body == {"already": True, "reason": "no such job"}
            owner.send_multipart(p.encode(p.Message(p.SUBMIT, "second", {"engine": "synthetic"}, {"audio_pcm": AUDIO})))
            busy = p.decode(owner.recv_multipart())
            while busy.job_id != "second":  # skip the first job's progress report
                busy = p.decode(owner.recv_multipart())
            assert busy.body["code"] == p.E_BUSY and busy.body["retryable"] is True
            both = p.Message(p.SUBMIT, "two-audios", {"engine": "synthetic"}, {"audio_pcm": AUDIO, "audio": np.zeros(4, np.uint8)})
            other.send_multipart(p.encode(both))
            assert p.decode(other.recv_multipart()).body["code"] == p.E_BAD_INPUT
        finally:
            runner.gates["g"].set()
            owner.close()
            other.close()
    assert runner.started == ["mine"]


def test_a_client_that_never_takes_its_chunks_gives_the_device_back():
    runner = SyntheticRunner()
    with serve(runner, stall_timeout_s=0.3) as server, connect(server) as paused, connect(server) as other:
        stuck = paused.submit_nowait("synthetic", audio=AUDIO, credit=1, options={"n_frames": 100, "chunk_frames": 5})
        handle = other.submit("synthetic", audio=AUDIO, options={"n_frames": 10})
        assert list(handle)[-1].type == p.DONE  # ran once the stalled job let go of the device
        assert wait_for(lambda: any(e.code == p.E_STALLED for e in list(paused.events.queue)))
        stalled = [e for e in paused.events.queue if e.job_id == stuck][-1]
        assert stalled.body["retryable"] is True and runner.produced[stuck] <= 1 + 2 + 1


def test_a_taken_address_is_a_clear_error_and_leaves_nothing_running():
    with serve(SyntheticRunner()) as first:
        with pytest.raises(p.BridgeError, match="cannot bind .*another server"):
            Server(SyntheticRunner(), ServerConfig(bind=first.address)).start()


def test_one_worker_per_device_runs_jobs_side_by_side():
    runner = SyntheticRunner(gates={"g": threading.Event()})
    with serve(runner, devices=("cuda:0", "cuda:1")) as server, connect(server) as client:
        handles = [client.submit("synthetic", audio=AUDIO, options={"hold": "g", "n_frames": 5}) for _ in range(3)]
        assert wait_for(lambda: len(runner.started) == 2)  # both devices busy, the third job waits
        time.sleep(0.2)
        assert len(runner.started) == 2
        runner.gates["g"].set()
        devices = set()
        for handle in handles:
            events = list(handle)
            assert events[-1].type == p.DONE
            devices |= {e.body["device"] for e in events if e.type == p.PROGRESS}
        assert devices == {"cuda:0", "cuda:1"}


def test_one_client_is_safe_to_share_between_threads():
    runner = SyntheticRunner()
    results: dict[int, object] = {}
    with serve(runner) as server, connect(server) as client:

        def run(seed: int) -> None:
            results[seed] = client.submit("synthetic", audio=AUDIO, options={"n_frames": 30, "chunk_frames": 7, "seed": seed}).result()

        threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    for seed, result in results.items():
        assert result.final.type == p.DONE
        assert np.array_equal(result.array("expression"), synthetic_chunk(0, 30, seed).expression)
    assert sorted(results) == [0, 1, 2, 3]


def test_credit_is_a_running_total_so_lost_repeated_or_inflated_credits_are_harmless():
    runner = SyntheticRunner()
    with serve(runner) as server:
        dealer = _raw_dealer(server)
        try:
            submit = p.Message(p.SUBMIT, "flow", {"engine": "synthetic", "credit": 1, "options": {"n_frames": 50}}, {"audio_pcm": AUDIO})
            dealer.send_multipart(p.encode(submit))

            def chunks_within(seconds: float) -> list[int]:
                starts, deadline = [], time.monotonic() + seconds
                while time.monotonic() < deadline:
                    if dealer.poll(20):
                        message = p.decode(dealer.recv_multipart())
                        if message.type == p.CHUNK:
                            starts.append(message.body["start"])
                return starts

            def credit(consumed: int) -> None:
                dealer.send_multipart(p.encode(p.Message(p.CREDIT, "flow", {"consumed": consumed})))

            assert chunks_within(0.4) == [0]  # the window of one
            credit(40)  # claims more than was ever sent: counts as 1
            assert chunks_within(0.4) == [10]
            credit(1)  # a repeat changes nothing
            assert chunks_within(0.3) == []
            credit(2)
            credit(2)
            assert chunks_within(0.3) == [20]
            credit(4)  # "3" was lost on the way: the next total makes it good, still one at a time
            assert chunks_within(0.3) == [30]
        finally:
            dealer.close()


def test_client_mistakes_fail_at_once_with_a_reason(tmp_path):
    with serve(SyntheticRunner()) as server:
        client = Client(server.address)
        client.connect()
        with pytest.raises(p.BridgeError, match="job id"):
            client.submit("synthetic", audio=AUDIO, job_id="../etc/passwd")
        with pytest.raises(p.BridgeError, match="needs audio"):
            client.submit("synthetic")
        with pytest.raises(p.BridgeError, match="missing.wav: cannot read the audio"):
            client.submit("synthetic", audio=tmp_path / "missing.wav")
        with pytest.raises(TypeError, match="unknown submit inputs"):
            client.submit("synthetic", audio=AUDIO, portrait="x.png")
        client.close()
        with pytest.raises(p.BridgeError, match="closed"):
            client.submit("synthetic", audio=AUDIO)


def test_big_engine_chunks_go_out_as_several_messages():
    runner = SyntheticRunner()
    frame_bytes = 64 * 64 * 3
    options = {"n_frames": 45, "chunk_frames": 40, "max_message_bytes": 10 * frame_bytes}
    with serve(runner) as server, connect(server) as client:
        result = client.submit("synthetic", audio=AUDIO, render_size=64, options=options).result()
    assert [c.body["n_frames"] for c in result.chunks] == [9, 9, 9, 9, 4, 5]  # ~10 frames' bytes each, incl. motion
    assert [c.body["start"] for c in result.chunks] == [0, 9, 18, 27, 36, 40]
    assert np.array_equal(result.array("frames"), synthetic_frames(0, 45, 64))
    assert np.array_equal(result.array("expression"), synthetic_chunk(0, 45).expression)
    assert result.final.body["n_chunks"] == 6 and result.final.body["n_frames"] == 45
