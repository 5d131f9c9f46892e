"""Speed of the Python package: rows/s of batches (a 13-column float DataFrame and the same
numpy array) and microseconds per log_prediction with a 13-key dict.

    python python/bench/bench.py [--rows 1000000] [--repeat 5]

Each figure is the best of --repeat runs (after one warm-up), into a fresh agent writing
to a temporary folder. Timing lives here, never in tests.
"""

import argparse
import platform
import tempfile
import time

import numpy as np
import pandas as pd

import modelwatch

NAMES = [f"f{i}" for i in range(13)]


def best(fn, repeat):
    fn()  # warm-up: windows, columns, caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    data = rng.lognormal(0.0, 1.0, size=(args.rows, 13))
    df = pd.DataFrame(data, columns=NAMES)
    preds = rng.random(args.rows)
    rows = [dict(zip(NAMES, map(float, r))) for r in data[: args.calls]]
    py_preds = preds[: args.calls].tolist()

    with tempfile.TemporaryDirectory() as d:
        modelwatch.configure(data_dir=d, window_seconds=3600)
        sess = modelwatch.session("bench")

        t = best(lambda: sess.log_prediction_batch(df, preds), args.repeat)
        print(f"DataFrame 13 float columns, {args.rows} rows: {args.rows / t:,.0f} rows/s ({t * 1e3:.1f} ms)")

        t = best(lambda: sess.log_prediction_batch(data, preds, feature_names=NAMES), args.repeat)
        print(f"numpy (rows x 13) float64, {args.rows} rows: {args.rows / t:,.0f} rows/s ({t * 1e3:.1f} ms)")

        def one_by_one():
            log = sess.log_prediction
            for r, p in zip(rows, py_preds):
                log(features=r, prediction=p)

        t = best(one_by_one, args.repeat)
        print(f"log_prediction, 13-key dict of floats: {t / args.calls * 1e6:.2f} µs/call")

        def positional():
            log = sess.log_prediction
            for r, p in zip(rows, py_preds):
                log(r, p)

        t = best(positional, args.repeat)
        print(f"  the same, arguments by position: {t / args.calls * 1e6:.2f} µs/call")

        def empty_loop():
            for r, p in zip(rows, py_preds):
                pass

        t0 = best(empty_loop, args.repeat)
        print(f"  (the Python loop alone: {t0 / args.calls * 1e6:.3f} µs/iteration)")

        mixed = [dict(r, country="NL", flag=True) for r in rows[:50_000]]
        t = best(lambda: [sess.log_prediction(features=r, prediction=0.5) for r in mixed], args.repeat)
        print(f"log_prediction, 13 floats + a str + a bool: {t / len(mixed) * 1e6:.2f} µs/call")
        modelwatch.shutdown()
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"{platform.machine()}, {platform.processor() or platform.platform()}")


if __name__ == "__main__":
    main()
