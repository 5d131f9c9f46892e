"""The last window is delivered at exit: a normal return, sys.exit, an unhandled
exception, and SIGTERM when opted in. Each case runs in its own interpreter; delivery is
checked by reading its data folder."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import modelwatch

PRELUDE = """
import sys, time, modelwatch
modelwatch.configure(data_dir=sys.argv[1], window_seconds=7 * 86400{options})
sess = modelwatch.session("exit")
for i in range(25):
    sess.log_prediction(features={{"x": float(i)}}, prediction=i % 2 == 0)
"""


def run(tmp_path, body, options="", **kw):
    data = tmp_path / "data"
    code = PRELUDE.format(options=options) + textwrap.dedent(body)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
    return proc, data


def delivered(data):
    if not data.exists():
        return 0
    return sum(s["predictions"] for s in modelwatch.read_summaries(data) if s["deployment"] == "exit")


@pytest.mark.parametrize(
    "body, code",
    [
        ("", 0),  # the script returns
        ("sys.exit(3)", 3),
        ("raise RuntimeError('boom')", 1),  # an unhandled exception
        ("import os; os.environ['X'] = '1'\nimport threading\nthreading.Thread(target=lambda: time.sleep(0.2)).start()", 0),
    ],
    ids=["return", "sys.exit", "unhandled-exception", "non-daemon-thread"],
)
def test_exit_delivers_the_last_window(tmp_path, body, code):
    proc, data = run(tmp_path, body)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert delivered(data) == 25, err
    summaries = modelwatch.read_summaries(data)
    assert all(s["partial"] for s in summaries)


def wait_ready(proc):
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()


def test_sigterm_opt_in_delivers_then_dies_of_the_signal(tmp_path):
    proc, data = run(tmp_path, "print('ready', flush=True)\ntime.sleep(60)", ", exit_on_signal=True")
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert delivered(data) == 25, err


def test_sigterm_without_opt_in_loses_the_window(tmp_path):
    """The control: the default action of SIGTERM runs no Python code at all."""
    proc, data = run(tmp_path, "print('ready', flush=True)\ntime.sleep(60)")
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert delivered(data) == 0


def test_exit_on_signal_refuses_a_taken_handler(tmp_path):
    """As the library does: a host's own SIGTERM handler is never overridden."""
    code = """
import signal, sys, modelwatch
signal.signal(signal.SIGTERM, lambda *a: None)
try:
    modelwatch.configure(data_dir=sys.argv[1], exit_on_signal=True)
except modelwatch.Error as e:
    print("refused", e)
print("configured", modelwatch.is_configured())
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "SIGTERM already has a handler" in proc.stdout
    assert proc.stdout.strip().endswith("configured False")


def test_sigterm_handler_is_kept_through_a_fork(tmp_path):
    """A forked worker inherits the opt-in: its SIGTERM delivers its own window."""
    body = """
    import os
    pid = os.fork()
    if pid == 0:
        s = modelwatch.session("exit")
        for i in range(10):
            s.log_prediction(features={"x": 1.0}, prediction=True)
        os.kill(os.getpid(), __import__("signal").SIGTERM)
        time.sleep(30)
        os._exit(9)
    _, status = os.waitpid(pid, 0)
    print("child", os.WIFSIGNALED(status) and os.WTERMSIG(status))
    """
    proc, data = run(tmp_path, body, ", exit_on_signal=True")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == f"child {int(signal.SIGTERM)}", err
    # 25 from the parent at its exit, 10 from the child at its SIGTERM; the child's 25
    # inherited rows stay with the parent (the child's agent starts empty).
    per_instance = {}
    for s in modelwatch.read_summaries(data):
        per_instance[s["instance"]] = per_instance.get(s["instance"], 0) + s["predictions"]
    assert sorted(per_instance.values()) == [10, 25], per_instance


def test_debug_mode_prints_each_summary_on_stderr(tmp_path):
    proc, data = run(tmp_path, "", ", debug_mode=True")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "== exit |" in err and "| 25 predictions" in err, err  # the table's heading
    assert delivered(data) == 25
