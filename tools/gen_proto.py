"""Regenerate the Python stubs in clients/python from proto/: the one codegen command.

protoc writes absolute imports (``from leadgate.v1 import ...``); the stubs live in the
``leadgate_client`` package, so those imports are rewritten to point there. With
``--check`` nothing is written, and the exit status says whether the stubs are stale.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
TARGET = ROOT / "clients" / "python" / "src" / "leadgate_client" / "v1"
IMPORT = re.compile(r"^from leadgate\.v1 import", re.MULTILINE)
PACKAGE_DOC = '"""Generated leadgate.v1 messages and stubs."""\n'


def generate() -> dict[str, str]:
    """Run protoc and return the stub files by name, imports rewritten."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    bin_dir = pathlib.Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *protos,
        ]
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True)
        generated = pathlib.Path(out) / "leadgate" / "v1"
        files = {
            path.name: IMPORT.sub("from leadgate_client.v1 import", path.read_text())
            for path in sorted(generated.iterdir())
        }
    files["__init__.py"] = PACKAGE_DOC
    return files


def stale_files(files: dict[str, str]) -> list[str]:
    """Name the stub files that differ from, or are missing in, the tree."""
    present = {p.name for p in TARGET.iterdir() if p.is_file()}
    stale = [n for n, text in files.items() if n not in present or _read(n) != text]
    return stale + sorted(present - files.keys() - {"py.typed"})


def _read(name: str) -> str:
    return (TARGET / name).read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stubs are stale")
    args = parser.parse_args()
    files = generate()
    if args.check:
        stale = stale_files(files)
        if stale:
            print("stale generated code, run `make proto`:", ", ".join(stale))
            return 1
        print("generated code is up to date")
        return 0
    for name in stale_files(files):
        path = TARGET / name
        if name in files:
            path.write_text(files[name])
        else:
            path.unlink()
    print(f"generated {len(files)} files into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
