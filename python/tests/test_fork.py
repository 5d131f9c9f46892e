"""Fork safety: after os.fork() (a pre-fork server such as gunicorn) each process has a
working agent of its own, delivering its own windows, and a child never waits on the
parent's agent, whose threads did not survive the fork."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import modelwatch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads


def per_instance(data_dir, deployment="m"):
    out = {}
    for s in modelwatch.read_summaries(data_dir):
        if s["deployment"] == deployment:
            out[s["instance"]] = out.get(s["instance"], 0) + s["predictions"]
    return out


def wait_child(pid, timeout=60):
    """The child's exit status; kills it and fails if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def child(fn):
    """Runs fn in a forked child that never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def test_a_forked_child_logs_into_its_own_agent(agent):
    sess = modelwatch.session("m")
    sess.log_metadata("model_version", "2.0")  # set once at startup, before the fork
    sess.set_decision_threshold(0.25)
    for i in range(30):
        sess.log_prediction(features={"x": float(i)}, prediction=1)

    def work():
        assert modelwatch.is_configured()
        assert sess.decision_threshold == 0.25
        for _ in range(10):
            sess.log_ground_truth(label=True, prediction=0.3)  # true at 0.25, false at 0.5
        for i in range(50):
            sess.log_prediction(features={"x": 100.0 + i}, prediction=2)  # the parent's handle
        modelwatch.flush()
        assert modelwatch.stats()["delivered"] == 1
        assert modelwatch.shutdown()

    assert wait_child(child(work)) == 0
    for i in range(10):
        sess.log_prediction(features={"x": float(i)}, prediction=1)
    modelwatch.flush()  # the parent's threads still run
    counts = per_instance(agent)
    assert sorted(counts.values()) == [40, 50], counts
    summaries = modelwatch.read_summaries(agent)
    assert all(s["metadata"] == {"model_version": "2.0"} for s in summaries)
    (child_gt,) = [s["ground_truth_overall"] for s in summaries if s["ground_truth_overall"]]
    assert child_gt["count"] == 10 and child_gt["accuracy"] == 1.0


def test_fork_while_another_thread_folds_batches(agent):
    """The fold holds the parent's shard locks with the GIL released: a child forked at
    that moment must not deadlock on them."""
    sess = modelwatch.session("m")
    data = np.random.default_rng(0).random((20_000, 13))
    preds = np.zeros(len(data))
    stop = threading.Event()
    folds = [0]

    def folding():
        while not stop.is_set():
            sess.log_prediction_batch(data, preds)
            folds[0] += 1

    t = threading.Thread(target=folding)
    t.start()
    try:
        def work():
            for _ in range(3):
                sess.log_prediction_batch(data[:100], preds[:100])
            sess.log_prediction(features={"x": 1.0}, prediction=1)
            modelwatch.shutdown()

        codes = []
        for _ in range(8):
            time.sleep(0.01)
            codes.append(wait_child(child(work)))
    finally:
        stop.set()
        t.join()
    assert codes == [0] * 8
    assert folds[0] > 0
    modelwatch.flush()
    counts = per_instance(agent)
    children = [n for n in counts.values() if n == 301]
    assert len(children) == 8, counts


def test_pre_fork_workers_deliver_at_their_normal_exit(tmp_path):
    """gunicorn's shape: the master configures, forks workers; each worker returns
    normally (atexit runs). A shutdown timeout of 60 s shows that no worker waits on the
    master's agent at exit (that wait would never be answered)."""
    code = textwrap.dedent(
        """
        import os, sys, modelwatch
        modelwatch.configure(data_dir=sys.argv[1], window_seconds=7 * 86400, shutdown_timeout=60)
        sess = modelwatch.session("m")
        for i in range(5):
            sess.log_prediction(features={"x": 1.0}, prediction=0)
        pids = []
        for w in range(3):
            pid = os.fork()
            if pid == 0:
                for i in range(20):
                    sess.log_prediction(features={"x": float(w)}, prediction=w)
                sys.exit(0)  # as a gunicorn worker ends: atexit handlers run
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        print("done")
        """
    )
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, timeout=45)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert sorted(per_instance(data).values()) == [5, 20, 20, 20]


def _mp_worker(n):
    sess = modelwatch.session("m")
    for _ in range(n):
        sess.log_prediction(features={"x": 1.0}, prediction=1)
    # returns: multiprocessing ends the child with os._exit, after its finalizers


def test_multiprocessing_children_deliver_when_their_target_returns(agent):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mp_worker, args=(n,)) for n in (7, 11)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(per_instance(agent).values()) == [7, 11]
