"""Threads: logging from many threads counts every row once; flush waits with the GIL
released."""

import socket
import sys
import threading
import time

import numpy as np

import modelwatch
from conftest import one


def test_many_threads_log_every_row_once(agent):
    sess = modelwatch.session("m")
    data = np.arange(4000, dtype=np.float64).reshape(1000, 4)

    def work(t):
        for i in range(500):
            sess.log_prediction(features={"x": float(i), "t": t}, prediction=i % 2)
        for _ in range(3):
            sess.log_prediction_batch(data, np.zeros(1000), feature_names=["a", "b", "c", "x"])

    threads = [threading.Thread(target=work, args=(f"t{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    modelwatch.flush()
    s = one(agent, "m")
    assert s["predictions"] == 6 * (500 + 3000)
    assert s["features"]["x"]["count"] == 6 * (500 + 3000)
    assert s["features"]["t"]["distinct"] == 6
    assert abs(s["features"]["a"]["mean"] - data[:, 0].mean()) <= 1e-12 * data[:, 0].mean()


def test_flush_waits_with_the_gil_released(data_dir):
    """A collector that accepts connections and never answers: flush waits until its
    timeout, and another thread runs meanwhile (with a switch interval longer than the
    wait, it could not if the GIL were held)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    modelwatch.configure(
        api_key="k", endpoint=f"http://127.0.0.1:{port}", hash_key="00" * 16, no_data_dir=True,
        request_timeout=30,
    )
    progress = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            progress[0] += 1

    old = sys.getswitchinterval()
    t = threading.Thread(target=spin)
    try:
        modelwatch.session("m").log_prediction(features={"x": 1.0}, prediction=1)
        sys.setswitchinterval(0.5)
        t.start()
        time.sleep(0.05)
        before = progress[0]
        try:
            modelwatch.flush(timeout=1.0)
            raise AssertionError("a collector that never answers cannot acknowledge")
        except modelwatch.Error:
            pass
        during = progress[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        t.join()
        try:
            modelwatch.shutdown(timeout=0.5)
        except modelwatch.Error:
            pass
        server.close()
    assert during > 0
