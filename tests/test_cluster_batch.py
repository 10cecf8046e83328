"""`talkbridge batch --ray` on a 2-node local Ray cluster (lite and tiny recipe SadTalker rows).

One cluster start-up covers: outputs identical to an in-process batch, weights loaded once per actor,
a bad row failing alone, a resume that recomputes nothing, and a node removed mid-batch losing
nothing. The Ray part runs in a loopback-only network namespace (tests/ray_harness.py).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkbridge.batch.backends import InProcessBackend
from talkbridge.batch.manifest import read_manifest
from talkbridge.batch.runner import BatchRun
from tests.helpers import statuses
from tests.test_batch_runs import complete_rows
from tests.ray_harness import local_cluster, run_scenario
from tests.speech import speech_like, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SETUP = "tests.test_cluster_batch:counting_tiny_renderer"


def tiny_renderer(cache) -> None:
    """In-process set-up: SadTalker renders with the tiny recipe face-vid2vid."""
    from tests.render_helpers import tiny_recipe_models

    tiny = tiny_recipe_models(seed=5)
    for device in ("auto", "cpu"):
        cache.sadtalker(device).provide_renderer(256, "crop", tiny)


def counting_tiny_renderer(cache):
    """Actor set-up: count every engine, network set and renderer the actor really constructs (by
    wrapping their constructors, so a cache that rebuilds shows up whatever its internals), then set up
    the tiny renderer. Returns what the actor's ``facts()`` reports: ``{"built": [(kind, key), ...]}``."""
    from talkbridge.core.lite.engine import LiteEngine
    from talkbridge.core.lite.preview import PreviewRenderer
    from talkbridge.core.sadtalker.models import SadTalkerModels

    built: list[list] = []

    def counted(cls, key):
        original = cls.__init__

        def init(self, *args, **kwargs):
            built.append([cls.__name__, key(*args, **kwargs)])
            original(self, *args, **kwargs)

        cls.__init__ = init

    counted(LiteEngine, lambda *a, **k: "")
    counted(PreviewRenderer, lambda head, size=512, **k: size)
    counted(SadTalkerModels, lambda folder, device="auto", precision="fp32", **k: f"{device}/{precision}")
    tiny_renderer(cache)
    return lambda: {"built": [list(entry) for entry in built]}


def make_project(folder: Path) -> dict[str, str]:
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import write_landmarked_portrait

    _, landmarks = write_landmarked_portrait(folder / "portrait.png")
    (folder / "face.json").write_text(json.dumps(landmarks.tolist()))
    checkpoints = write_official_checkpoint_dir(folder / "checkpoints", render=False)
    for i, seconds in enumerate((1.0, 1.3, 0.9, 0.5, 0.6)):  # lite rows, then the SadTalker ones
        write_wav(folder / f"line{i}.wav", speech_like(seconds, seed=i))
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot really")
    cv2.imwrite(str(folder / "blank.png"), np.full((256, 256, 3), 128, np.uint8))
    (folder / "lines.csv").write_text(
        "audio,name,engine,seed,size,portrait,landmarks,pose_style,exports\n"
        "line0.wav,,lite,1,64,,,,livelink\n"
        "line1.wav,,lite,2,64,,,,curves\n"
        "line2.wav,,lite,3,64,,,,\n"
        "line3.wav,st_a,sadtalker,1,256,portrait.png,face.json,3,livelink\n"
        "line4.wav,st_b,sadtalker,2,256,portrait.png,face.json,7,\n"
        "broken.wav,,lite,0,64,,,,\n"
        "line0.wav,noface,sadtalker,0,256,blank.png,,,\n"
    )
    long_lines = ["audio,name,engine,seed,size"]
    for i in range(6):
        write_wav(folder / f"long{i}.wav", speech_like(5.0, seed=10 + i))
        long_lines.append(f"long{i}.wav,,lite,{i},96")
    (folder / "long.csv").write_text("\n".join(long_lines) + "\n")
    return {"folder": str(folder), "checkpoints": str(checkpoints)}


def names_and_mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.iterdir()) if p.name != "batch_report.json"}


def scenario(payload: dict) -> dict:
    """Inside the namespace: the batch, its resume and a node loss, all on one cluster."""
    import ray

    from talkbridge.cluster.batch_backend import RayBackend

    folder = Path(payload["folder"])
    result: dict = {}
    # The in-process reference runs here too: same thread settings as the actors, so the same float sums.
    local = InProcessBackend(Path(payload["checkpoints"]))
    tiny_renderer(local.cache)
    for manifest, out in (("lines.csv", "local"), ("long.csv", "local_long")):
        BatchRun(read_manifest(folder / manifest), folder / out, local, progress=False).run()
    with local_cluster(nodes=2, cpus=2) as cluster:
        backend = RayBackend(cluster.address, Path(payload["checkpoints"]), setup=SETUP)
        try:
            result["backend"] = backend.name
            out = folder / "ray"
            rows = read_manifest(folder / "lines.csv")
            BatchRun(rows, out, backend, progress=False).run()
            result["first"] = statuses(out)
            result["facts"] = ray.get([actor.facts.remote() for actor in backend.pool.actors])
            before = names_and_mtimes(out)
            BatchRun(rows, out, backend, progress=False).run()
            result["resume"] = statuses(out)
            result["resume_untouched"] = names_and_mtimes(out) == before
            result["resume_jobs"] = [f["jobs"] for f in ray.get([a.facts.remote() for a in backend.pool.actors])]

            long_out = folder / "ray_long"
            run = BatchRun(read_manifest(folder / "long.csv"), long_out, backend, progress=False)
            thread = threading.Thread(target=run.run)
            thread.start()
            deadline = time.monotonic() + 240
            while not complete_rows(long_out) and time.monotonic() < deadline:
                time.sleep(0.05)
            victim = cluster.worker_nodes
            removed = [node for node in victim if node.node_id != cluster.head_node.node_id][-1]
            cluster.remove_node(removed)
            result["removed_node"] = removed.node_id
            result["done_at_removal"] = len(complete_rows(long_out))
            thread.join(timeout=400)
            result["long"] = statuses(long_out)
            result["long_files"] = sorted(p.name for p in long_out.iterdir())
            result["facts_after"] = ray.get([actor.facts.remote() for actor in backend.pool.actors])
        finally:
            backend.close()
    return result


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster_batch")
    payload = make_project(folder)
    result = run_scenario("tests.test_cluster_batch:scenario", payload, timeout=800)
    return folder, result


def test_ray_rows_write_the_in_process_files_and_a_bad_row_fails_alone(outcome):
    from tests.test_job_routes import assert_same_outputs

    folder, result = outcome
    assert result["interfaces"] == ["lo"]
    assert result["backend"].endswith("(2 actors, 2 nodes, 0 GPUs)")
    expected = {"line0": "done", "line1": "done", "line2": "done", "st_a": "done", "st_b": "done", "broken": "failed",
                "noface": "failed"}
    assert result["first"] == expected == statuses(folder / "local")
    report = json.loads((folder / "ray/batch_report.json").read_text())
    broken, noface = report["rows"][-2:]
    assert broken["reason"].startswith("lines.csv:7: ") and "cannot decode audio" in broken["reason"]
    # No face: the detector finds none, or (without its weights) says how to fetch them; either way this row alone.
    assert noface["reason"].startswith("lines.csv:8: ") and "face" in noface["reason"] and noface["files"] == {}
    assert not list((folder / "ray").glob("noface.*"))
    for name in ("line0", "line1", "line2", "st_a", "st_b"):
        metadata = assert_same_outputs(folder / "local", folder / "ray", name)
        assert metadata["route"].startswith("ray ")
    for name in ("line0.livelink.csv", "line1.curves.csv", "st_a.livelink.csv"):
        assert (folder / "local" / name).read_bytes() == (folder / "ray" / name).read_bytes()


def test_each_actor_loads_its_engines_once_and_rows_spread_over_both_nodes(outcome):
    _, result = outcome
    facts = result["facts"]
    assert len({fact["node_id"] for fact in facts}) == 2
    assert sum(fact["jobs"] for fact in facts) == 6  # the undecodable row fails on the driver, before any actor
    for fact in facts:
        built = [tuple(entry) for entry in fact["setup"]["built"]]
        assert len(built) == len(set(built)), built  # nothing built twice
        assert ("SadTalkerModels", "cpu/fp32") in built  # the set-up's own builds are counted too
    ran_lite = [fact for fact in facts if ("LiteEngine", "") in map(tuple, fact["setup"]["built"])]
    assert ran_lite, "no actor built the lite engine: the count sees nothing"
    assert max(fact["jobs"] for fact in facts) >= 2


def test_a_resume_recomputes_nothing_complete(outcome):
    _, result = outcome
    assert result["resume"] == {"line0": "skipped", "line1": "skipped", "line2": "skipped",
                                "st_a": "skipped", "st_b": "skipped", "broken": "failed", "noface": "failed"}
    assert result["resume_untouched"]
    # Only the bad rows ran again, and of those only the no-face row reaches an actor (bad audio fails on the driver).
    assert sum(result["resume_jobs"]) == sum(fact["jobs"] for fact in result["facts"]) + 1


def test_a_node_removed_mid_batch_loses_nothing_and_duplicates_nothing(outcome):
    from tests.test_job_routes import assert_same_outputs

    folder, result = outcome
    assert result["done_at_removal"] < 6
    assert result["long"] == {f"long{i}": "done" for i in range(6)}
    expected = sorted(p.name for p in (folder / "local_long").iterdir())
    assert result["long_files"] == expected  # every file once, nothing partial left behind
    for i in range(6):
        assert_same_outputs(folder / "local_long", folder / "ray_long", f"long{i}")
    survivors = {fact["node_id"] for fact in result["facts_after"]}
    assert result["removed_node"] not in survivors and len(survivors) == 1  # the lost actor restarted elsewhere
