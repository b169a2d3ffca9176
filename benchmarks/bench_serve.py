"""Benchmark of ``sganon serve``'s API: upload, first anonymization, "new person" re-runs.

Runs the app in-process (FastAPI TestClient, no browser) on one photo with the page's
default options (offline detector, baseline unless realistic weights are imported), and
times: the upload (decode + checks), the first run (detection + anonymization + overlays),
and ``--repeats`` "new person" runs (detections re-used, a new seed each).

Usage::

    python benchmarks/bench_serve.py PHOTO [--repeats 3] [--preset baseline.mask-noise]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sganon.serve.app import create_app


def wait(client: TestClient, run_id: str) -> dict:
    while True:
        status = client.get(f"/api/runs/{run_id}").json()
        if status["state"] in ("done", "error"):
            if status["state"] == "error":
                raise SystemExit(f"run failed: {status['message']}")
            return status
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default=None)
    args = parser.parse_args()
    with TestClient(create_app()) as client:
        start = time.perf_counter()
        answer = client.post("/api/uploads", params={"name": args.photo.name}, content=args.photo.read_bytes())
        answer.raise_for_status()
        upload = answer.json()
        print(f"photo {upload['width']}x{upload['height']}: upload {time.perf_counter() - start:.2f} s")

        def run(seed: int) -> tuple[float, dict]:
            begin = time.perf_counter()
            started = client.post(f"/api/uploads/{upload['id']}/runs", json={"seed": seed, "preset": args.preset})
            started.raise_for_status()
            status = wait(client, started.json()["id"])
            return time.perf_counter() - begin, status

        first, status = run(0)
        print(f"generator {status['info']['generator']}; persons {status['info']['persons']}")
        print(f"first run (loads models, detects): {first:.2f} s")
        again = [run(seed)[0] for seed in range(1, args.repeats + 1)]
        print(f"new person (detections re-used): mean {statistics.mean(again):.2f} s, min {min(again):.2f} s")


if __name__ == "__main__":
    main()
