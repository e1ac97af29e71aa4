"""What the Kubernetes checks share: the generator module (deploy/k8s/manifests.py, loaded by path) and
each overlay built once by kustomize for the whole session."""

import functools
import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUSTOMIZE = Path(os.environ.get("KUSTOMIZE", REPO / ".local" / "bin" / "kustomize"))
# The oldest Kubernetes minor the manifests must work on (native preStop sleep needs 1.30).
KUBERNETES_VERSION = "1.30"


def _manifests_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oms_k8s_manifests", K8S / "manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


manifests = _manifests_module()


@functools.cache
def _build(overlay: str) -> str:
    if not KUSTOMIZE.is_file():
        pytest.fail(f"kustomize not found at {KUSTOMIZE}: run `make kustomize` (installs it into .local/bin)")
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"overlay {overlay} does not build:\n{result.stderr}"
    return result.stdout


def build(overlay: str) -> list[dict[str, Any]]:
    """The overlay's documents (a fresh copy each call: tests may not change what another one reads)."""
    return [d for d in yaml.safe_load_all(_build(overlay)) if d]
