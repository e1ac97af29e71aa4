"""Files generated from the code and checked in: write them, or check that they are current.

Every generator of the repository (JSON Schemas and AsyncAPI here, the OpenAPI documents in
`oms_runtime.openapi`, the Kubernetes base in deploy/k8s/manifests.py) describes its files as
`GeneratedFiles` and gets the same `--write` / `--check` command from `command`. It lives in the
contract package because that is the one package every generator already depends on.
"""

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GeneratedFiles:
    """The files `render` returns (path relative to `root` -> text), checked in under `root`.

    With `owned` (a glob under `root`), every file it matches is generated: one that `render` no
    longer returns is reported stale by a check (`stale_note` says why) and deleted by a write.
    """

    root: Path
    render: Callable[[], Mapping[str, str]]
    owned: str | None = None
    stale_note: str = ""

    def _found(self, expected: Mapping[str, str]) -> dict[str, str]:
        found = {name: (self.root / name).read_text() for name in expected if (self.root / name).is_file()}
        if self.owned is not None and self.root.is_dir():
            found |= {p.relative_to(self.root).as_posix(): p.read_text() for p in self.root.glob(self.owned)}
        return found

    def differences(self) -> list[str]:
        """What a check reports: missing, then stale, then differing files, each sorted by name."""
        expected = self.render()
        found = self._found(expected)
        problems = [f"missing {name}" for name in sorted(expected.keys() - found.keys())]
        problems += [f"stale {name}{self.stale_note}" for name in sorted(found.keys() - expected.keys())]
        problems += [f"differs {name}" for name in sorted(expected) if name in found and found[name] != expected[name]]
        return problems

    def write(self) -> None:
        expected = self.render()
        for stale in self._found(expected).keys() - expected.keys():
            (self.root / stale).unlink()
        for name, text in expected.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def command(
    description: str | None,
    targets: Sequence[GeneratedFiles],
    *,
    report: str = "{problem}",
    argv: Sequence[str] | None = None,
) -> int:
    """`--write` regenerates every target; `--check` prints each problem (formatted by `report`, which
    should say the command that fixes it) to stderr and returns 1 if there is any."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        for target in targets:
            target.write()
        return 0
    problems = [problem for target in targets for problem in target.differences()]
    for problem in problems:
        print(report.format(problem=problem), file=sys.stderr)
    return 1 if problems else 0
