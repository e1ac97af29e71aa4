"""The version of the OMS, written once: the event contract (AsyncAPI `info.version`, the released snapshot
under libs/events/released/<version>) and the images of the Kubernetes manifests carry it, and the
CHANGELOG has an entry for it. Raise it when releasing; `python -m oms_events.compatibility --snapshot`
then records the contract of the new release."""

from typing import Final

VERSION: Final = "1.0.0"
