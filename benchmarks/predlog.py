"""Prediction log: the cost of ``log()`` on the request path and the flush throughput.

There is no anchor for this one: none of the tools Dockyard is compared with (MLflow,
Evidently) has an in-process prediction logger to run on the same work, so this script prints
Dockyard's own figures only, not a ratio.

Work: 100,000 single-row records of 10 features (8 floats, 2 categories), logged by one
thread into a :class:`~dockyard.serving.predlog.PredictionLogWriter` on a local folder
(a buffer large enough for all of them, so nothing is dropped), then one blocking flush.

Figures:
  * ``log()`` cost: µs per record, logging them one record per call (a request of one row)
    and 100 records per call (a batch request), measured with the flush thread idle;
  * flush throughput: records per second from the buffer to zstd Parquet files on disk
    (build the Arrow table, redact -- one mask rule, one hash rule --, encode, write, rename),
    plaintext and encrypted (AES-256-GCM, when ``cryptography`` is installed);
  * the same records read back with ``read_predictions``, records per second.

Run: ``python benchmarks/predlog.py [--records N]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from dockyard.governance.redaction import RedactionPolicy
from dockyard.serving.predlog import PredictionLogWriter, read_predictions, records_for_request

FEATURES = 10


def make_records(n: int) -> list:  # type: ignore[type-arg]
    rng = random.Random(0)
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        inputs = {f"f{j}": rng.random() * 100 for j in range(FEATURES - 2)}
        inputs["country"] = rng.choice(["FR", "DE", "ES", "IT"])
        inputs["customer_id"] = f"cust-{rng.randrange(10_000)}"
        out.extend(
            records_for_request(
                request_id=f"req-{i}",
                endpoint="fraud",
                variant="champion",
                model="fraud-model",
                model_version=3,
                time=now + i // 100,
                latency_ms=rng.random() * 5,
                inputs=[inputs],
                predictions=[i % 2],
                probas=[[0.3, 0.7]],
            )
        )
    return out


def bench(records: list, per_call: int, cipher=None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    policy = RedactionPolicy.from_rules(
        [
            {"column": "customer_id", "action": "hash"},
            {"column": "country", "action": "mask", "keep": 1},
        ]
    )
    with tempfile.TemporaryDirectory() as root:
        w = PredictionLogWriter(
            root,
            cipher=cipher,
            redaction={"fraud": policy},
            redaction_key="benchmark-redaction-key-0123456789abcdef",
            max_buffer_records=len(records) + 1,
            flush_records=len(records) + 1,  # the thread stays idle while we log
            flush_seconds=3600,
        )
        n = len(records)
        start = time.perf_counter()
        if per_call == 1:
            for r in records:
                w.log(r)
        else:
            for i in range(0, n, per_call):
                w.log(records[i : i + per_call])
        logged = time.perf_counter() - start
        start = time.perf_counter()
        w.flush()
        flushed = time.perf_counter() - start
        w.close()
        assert w.dropped_records == 0 and w.written_records == n, w.stats()
        start = time.perf_counter()
        table = read_predictions(root, "fraud", cipher=cipher)
        read = time.perf_counter() - start
        assert table.num_rows == n
    return {
        "log_us": logged / n * 1e6,
        "flush_rps": n / flushed,
        "read_rps": n / read,
        "files": w.written_files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    start = time.perf_counter()
    records = make_records(args.records)
    built = (time.perf_counter() - start) / args.records * 1e6
    bench(records[:2000], per_call=1)  # warm up: imports, pyarrow's first calls
    print(f"prediction log: {args.records:,} records of {FEATURES} features (no anchor)")
    one = bench(records, per_call=1)
    many = bench(records, per_call=100)
    print(f"  records_for_request, 1 row     {built:8.2f} µs/request (random inputs included)")
    print(f"  log() one record per call      {one['log_us']:8.2f} µs/record")
    print(f"  log() 100 records per call     {many['log_us']:8.2f} µs/record")
    print(f"  flush to Parquet (plaintext)   {many['flush_rps']:12,.0f} records/s")
    try:
        from dockyard.artifacts.crypto import BlobCipher, EnvKeyProvider, new_key

        cipher = BlobCipher(EnvKeyProvider(new_key()))
    except Exception as exc:  # the encryption extra is missing
        print(f"  flush, encrypted               skipped ({exc})")
    else:
        enc = bench(records, per_call=100, cipher=cipher)
        print(f"  flush to Parquet (encrypted)   {enc['flush_rps']:12,.0f} records/s")
        print(f"  read back (encrypted)          {enc['read_rps']:12,.0f} records/s")
    print(f"  read back (plaintext)          {many['read_rps']:12,.0f} records/s")


if __name__ == "__main__":
    main()
