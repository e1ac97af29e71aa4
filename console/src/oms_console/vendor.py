"""The front-end libraries the console serves itself (nothing is loaded from the internet at run time).

They are small and permissively licensed, so the files are committed under `static/vendor/` with their
licences; `vendor.json` pins each one: its npm package and version, the tarball's sha512 integrity, and
the file's sha256.

python -m oms_console.vendor --check    exit 1 when a committed file is not the pinned one
python -m oms_console.vendor --update   fetch the pinned versions again (`npm pack`), check the tarball's
                                        integrity, and write the files (after changing a version in vendor.json,
                                        take the new integrity from `npm view <package>@<version> dist.integrity`)
"""

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PINS = HERE / "vendor.json"
VENDOR_DIR = HERE / "static" / "vendor"


def pins() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(PINS.read_text())
    return loaded


def problems() -> list[str]:
    """What differs between the committed files and their pins."""
    found = []
    for name, pin in pins().items():
        path = VENDOR_DIR / name
        if not path.exists():
            found.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != pin["sha256"]:
            found.append(f"{name}: not {pin['package']}@{pin['version']} (sha256 differs)")
    return found


def update() -> None:
    pinned = pins()
    for name, pin in pinned.items():
        with tempfile.TemporaryDirectory() as tmp:
            spec = f"{pin['package']}@{pin['version']}"
            out = subprocess.run(
                ["npm", "pack", spec, "--json", "--pack-destination", tmp], check=True, capture_output=True, text=True
            )
            tarball = Path(tmp) / json.loads(out.stdout)[0]["filename"]
            algorithm, _, expected = pin["integrity"].partition("-")
            digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
            if digest != expected:
                raise SystemExit(f"{spec}: the tarball's integrity is not the pinned one")
            with tarfile.open(tarball) as archive:
                member = archive.extractfile(pin["path"])
                assert member is not None
                content = member.read()
            (VENDOR_DIR / name).write_bytes(content)
            pin["sha256"] = hashlib.sha256(content).hexdigest()
    PINS.write_text(json.dumps(pinned, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--update"]:
        update()
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
