"""What encryption at rest costs: the artifact store writing and reading one large file,
plaintext vs AES-256-GCM (benchmarks/encryption.py).

There is no anchor: MLflow's artifact stores do not encrypt (they leave it to the bucket).
The reference is Dockyard's own plaintext path on the same file in the same run; the ratio is
what turning DOCKYARD_ENCRYPTION_KEY on costs. Both paths hash the plaintext (sha256) and
fsync before the rename, so the difference is the cipher.

    python benchmarks/encryption.py [--mib 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from dockyard.artifacts import ArtifactStore
from dockyard.artifacts.crypto import BlobCipher, EnvKeyProvider, new_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "data.bin")
        with src.open("wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1024 * 1024))
        stores = {
            "plaintext": ArtifactStore(str(Path(tmp, "plain"))),
            "AES-256-GCM": ArtifactStore(
                str(Path(tmp, "enc")), BlobCipher(EnvKeyProvider(new_key()))
            ),
        }
        results: dict[str, dict[str, float]] = {}
        for name, store in stores.items():
            writes, reads = [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                digest = store.put_file(src).digest
                writes.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert sum(len(c) for c in store.open_blob(digest)) == args.mib * 1024 * 1024
                reads.append(time.perf_counter() - start)
                store.delete_blob(digest)
            results[name] = {"write": statistics.median(writes), "read": statistics.median(reads)}
    mib = args.mib
    print(
        f"{mib} MiB file, median of {args.repeat}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"{'path':<14}{'write MiB/s':>14}{'read MiB/s':>14}")
    for name, r in results.items():
        print(f"{name:<14}{mib / r['write']:>14,.0f}{mib / r['read']:>14,.0f}")
    p, e = results["plaintext"], results["AES-256-GCM"]
    print(
        f"encryption costs {e['write'] / p['write']:.2f}x the plaintext write time and "
        f"{e['read'] / p['read']:.2f}x the read time"
    )


if __name__ == "__main__":
    main()
