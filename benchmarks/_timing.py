"""Shared by the benchmark scripts: the best of a few timed calls, after one warm-up (compilation) call."""

import time


def best_time(fn, repeats: int = 3) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
