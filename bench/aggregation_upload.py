"""``python -m bench aggregation_upload [--mb 200]``: a large NDJSON bulk upload through a real
API process, its memory sampled as it goes (printed only).

The body is generated as it is sent (the client holds one chunk), one line in 10,000 broken;
the API's resident set size is read from ``/proc/<pid>/status`` every half second, the job's
progress from ``GET /api/v1/aggregation/jobs/{id}`` while it runs. Flat memory means the peak
stays near the start whatever ``--mb`` is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from synapseops.settings import Settings
from tests.e2e.stack import ApiProcess
from tests.integration.databases import fresh_database
from tests.integration.worker_process import free_port

TOKEN = f"bench-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BROKEN_EVERY = 10_000


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def body(total_bytes: int, counter: list[int]) -> Iterator[bytes]:
    line = 0
    while counter[0] < total_bytes:
        lines = []
        for _ in range(500):
            line += 1
            if line % BROKEN_EVERY == 0:
                lines.append('{"id": "broken"')
            else:
                row = {"id": f"u{line}", "type": "bench.row", "time": "2026-12-01T00:00:00Z",
                       "amount": "12.50", "pad": "x" * 60}  # fmt: skip
                lines.append(json.dumps(row))
        chunk = ("\n".join(lines) + "\n").encode()
        counter[0] += len(chunk)
        yield chunk


def run(options: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="bench aggregation_upload")
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args(list(options))
    settings = Settings()
    with fresh_database(settings.database_url, "bench_upload") as url, TemporaryDirectory() as tmp:
        env = {**os.environ, "SYNAPSEOPS_ENV": "dev", "SYNAPSEOPS_DATABASE_URL": url,
               "SYNAPSEOPS_API_TOKEN": TOKEN, "SYNAPSEOPS_API_PORT": str(free_port()),
               "SYNAPSEOPS_DATA_DIR": tmp}  # fmt: skip
        api = ApiProcess(env, Path(tmp) / "api.log")
        api.start()
        try:
            assert api.process is not None
            pid = api.process.pid
            name = f"bench-{uuid.uuid4().hex[:6]}"
            source = {"name": name, "kind": "bulk", "logic": "bulk"}
            created = httpx.post(f"{api.url}/api/v1/aggregation/sources", headers=AUTH, json=source)
            created.raise_for_status()
            samples: list[float] = [rss_mb(pid)]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.5):
                    samples.append(rss_mb(pid))
                    jobs = httpx.get(f"{api.url}/api/v1/aggregation/jobs", params={"source": name},
                                     headers=AUTH).json()  # fmt: skip
                    if jobs and len(samples) % 20 == 0:  # every 10 s
                        job = jobs[0]
                        say(
                            f"  {time.perf_counter() - started:5.0f} s: job {job['state']}, "
                            f"{job['bytes_done'] / 1e6:4.0f} MB read, {job['records_in']:,} lines,"
                            f" {job['records_failed']} refused; API RSS {samples[-1]:.0f} MB"
                        )

            watcher = threading.Thread(target=sample, daemon=True)
            sent = [0]
            started = time.perf_counter()
            watcher.start()
            answer = httpx.post(f"{api.url}/api/v1/aggregation/sources/{name}/uploads",
                                content=body(args.mb * 1_000_000, sent), headers=AUTH,
                                timeout=3600)  # fmt: skip
            seconds = time.perf_counter() - started
            done.set()
            watcher.join()
            job = answer.json()
            say(
                f"upload of {sent[0] / 1e6:.0f} MB NDJSON: {job['records_in']:,} lines in "
                f"{seconds:.0f} s ({job['records_in'] / seconds:,.0f} lines/s), "
                f"{job['records_failed']} refused by line number (first: {job['errors'][:1]})"
            )
            say(
                f"API RSS: {samples[0]:.0f} MB at start, peak {max(samples):.0f} MB, "
                f"{samples[-1]:.0f} MB at the end ({len(samples)} samples, every 0.5 s)"
            )
            # The answer carries the first 100 errors; the job keeps up to 1,000.
            kept = httpx.get(f"{api.url}/api/v1/aggregation/jobs/{job['id']}", headers=AUTH)
            reported = [error["line"] for error in kept.json()["errors"]]
            broken = list(range(BROKEN_EVERY, job["records_in"] + 1, BROKEN_EVERY))
            say(
                f"bad lines reported: {len(reported)} of the {len(broken)} broken "
                f"(every {BROKEN_EVERY:,}th); numbers exact: {reported == broken[: len(reported)]}"
                f"; first {reported[:3]}, last {reported[-1:]}"
            )
        finally:
            api.stop()
