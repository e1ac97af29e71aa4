"""The API's error bodies, one shape for every route of every service (oms_runtime.http_api)."""

from oms_runtime.http_api import error_response, field_name

__all__ = ["error_response", "field_name"]
