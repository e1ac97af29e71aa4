"""SmsSender over a provider's HTTP API (httpx). The API, as the service README documents it:

    POST {base_url}/v1/messages
    Authorization: Bearer <api key>            (when configured)
    Idempotency-Key: <notification id>
    {"to": "+49301234567", "from": "OMS", "body": "...", "reference": "<notification id>"}

    201 {"id": "...", "status": "queued"}      accepted
    200 {"id": "...", ...}                     the same key again: the first message, nothing new sent
    4xx {"error": {"code": "...", "message": "..."}}
        codes: invalid_number -> bad_address, unsubscribed -> unsubscribed, anything else -> rejected
    5xx, 408, 425, 429, timeouts, connection errors: transient

With `"status_callback": <url>` in the request, the provider later reports delivery there:

    POST <url>
    X-Webhook-Token: <SMS_WEBHOOK_TOKEN>
    {"id": "...", "status": "delivered" | "undelivered", "error_code": "..."}

401/403 are our configuration's fault, not the message's: transient, so that the messages go out once
the key is fixed (and give up after the attempts like any other transient failure).
"""

from dataclasses import dataclass
from typing import Any, Final

import httpx

from notification_service.adapters.sms_sender import OutgoingSms, SmsReceipt, SmsRejectedError, SmsSendError
from oms_runtime.logging import mask_text

_TRANSIENT_4XX: Final = frozenset({401, 403, 408, 425, 429})
_REASONS: Final = {"invalid_number": "bad_address", "unsubscribed": "unsubscribed"}


@dataclass(frozen=True)
class SmsProviderConfig:
    base_url: str = "http://127.0.0.1:1026"
    api_key: str | None = None
    sender_id: str = "OMS"
    timeout_s: float = 10.0
    status_callback_url: str | None = None
    """Where the provider reports delivery (`POST /webhooks/sms/status` of this service); None: no reports."""


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body: Any = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return str(error.get("code", "unknown")), str(error.get("message", ""))[:200]
    except ValueError:
        return "unknown", response.text[:200]


class HttpSmsSender:
    def __init__(self, config: SmsProviderConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        headers = {"Idempotency-Key": sms.idempotency_key}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        body = {"to": sms.to, "from": self._config.sender_id, "body": sms.body, "reference": sms.reference}
        if self._config.status_callback_url:
            body["status_callback"] = self._config.status_callback_url
        url = self._config.base_url.rstrip("/") + "/v1/messages"
        try:
            response = await self._client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SmsSendError(f"SMS provider unreachable: {type(exc).__name__}: {mask_text(str(exc))}") from None
        if response.status_code in (200, 201, 202):
            try:
                provider_id = str(response.json()["id"])
            except (ValueError, KeyError, TypeError):
                raise SmsSendError(f"SMS provider answered {response.status_code} without a message id") from None
            return SmsReceipt(provider_id, replayed=response.status_code == 200)
        code, message = _error_of(response)
        text = f"SMS provider answered {response.status_code} {code}: {mask_text(message)}".rstrip(": ")
        if response.status_code >= 500 or response.status_code in _TRANSIENT_4XX:
            raise SmsSendError(text)
        if 400 <= response.status_code < 500:
            raise SmsRejectedError(text, _REASONS.get(code, "rejected"))
        raise SmsSendError(text)
