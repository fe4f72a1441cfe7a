"""The wheels a device session carries in the git-ignored `.whl/`: the packages the GPU machine lacks (its torch,
transformers, accelerate and peft are its own), at the versions of requirements/test.txt and checked against
the lock's hashes, built for the device's CPython 3.12 on x86-64. `benchmarks/device.sh` installs them there.

    python benchmarks/device_wheels.py             # download into .whl/
    python benchmarks/device_wheels.py --print     # the requirement lines it would download
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements/test.txt"
DEVICE_LACKS = ("diffusers", "importlib-metadata", "pydantic", "pydantic-core", "annotated-types",
                "typing-inspection", "pandera", "typeguard")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def lock_entries(names: tuple[str, ...], lock: Path = LOCK) -> list[str]:
    """Each named package's whole entry in the lock (`name==version` with its hashes), in the order given."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock.read_text().splitlines():
        if pin := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line):
            current = entries.setdefault(re.sub(r"[-_.]+", "-", pin[1].lower()), [])
        if current is not None and not line.lstrip().startswith("#"):
            current.append(line.strip().rstrip("\\").strip())
        if not line.rstrip().endswith("\\"):
            current = None
    missing = [name for name in names if name not in entries]
    if missing:
        raise SystemExit(f"{lock}: does not pin {', '.join(missing)}")
    return [" ".join(entries[name]) for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=str(REPO / ".whl"))
    parser.add_argument("--print", action="store_true", help="print the requirement lines, download nothing")
    args = parser.parse_args()
    requirements = lock_entries(DEVICE_LACKS)
    if args.print:
        print("\n".join(requirements))
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as file:
        file.write("\n".join(requirements) + "\n")
        file.flush()
        platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platforms, "--require-hashes",
                        "-r", file.name, "-d", args.dest], check=True)


if __name__ == "__main__":
    main()
