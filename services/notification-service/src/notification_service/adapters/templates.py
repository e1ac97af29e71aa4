"""Message templates: Jinja2 files under `notification_service/templates/<locale>/<kind>.<part>`.

Each kind has four parts: the email's `subject.txt` (one line), `txt` (the plain-text body) and
`html`, and the SMS text `sms.txt`. A locale without its own file for a part falls back to the
language (`de` for `de-AT`), then to `en`. HTML is autoescaped; a variable the template needs but the
context lacks is an error, not a blank. The filter `long_date(locale)` writes an ISO date in words.

Templates are compiled once and never looked at again on disk (no `auto_reload`: a deployment ships
them with the code), and the template a (kind, part, locale) falls back to is found once: looking it up
per message asked the loader for each candidate (a missing one is never cached, and costs an exception)
and checked the file's modification time.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from notification_service.domain.notifications import DEFAULT_LOCALE, NotificationKind, format_date

TEMPLATES_DIR: Final = Path(__file__).resolve().parent.parent / "templates"
EMAIL_PARTS: Final = ("subject.txt", "txt", "html")
SMS_PART: Final = "sms.txt"
PARTS: Final = (*EMAIL_PARTS, SMS_PART)

_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_CHOSEN_MAX: Final = 4096
"""Fallbacks remembered at most (locales come from customers' preferences: bounded, like everything kept)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    locale: str
    """The locale of the body templates actually used (after fallback)."""


@dataclass(frozen=True)
class RenderedSms:
    body: str
    locale: str


def locale_candidates(locale: str) -> list[str]:
    """`de-AT` -> `["de-AT", "de", "en"]`; anything that does not look like a locale -> `["en"]`."""
    candidates: list[str] = []
    if _LOCALE.match(locale):
        candidates.append(locale)
        language = re.split(r"[-_]", locale, maxsplit=1)[0]
        candidates.append(language)
    candidates.append(DEFAULT_LOCALE)
    return list(dict.fromkeys(candidates))


class TemplateRenderer:
    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self._env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self._env.filters["long_date"] = format_date
        self._chosen: dict[tuple[NotificationKind, str, str], tuple[Template, str]] = {}

    def available_locales(self) -> list[str]:
        loader = self._env.loader
        assert isinstance(loader, FileSystemLoader)
        return sorted({name.split("/", 1)[0] for name in loader.list_templates() if "/" in name})

    def _render_part(
        self, kind: NotificationKind, part: str, locale: str, context: Mapping[str, Any]
    ) -> tuple[str, str]:
        key = (kind, part, locale)
        chosen = self._chosen.get(key)
        if chosen is None:
            candidates = locale_candidates(locale)
            template = self._env.select_template([f"{c}/{kind.value}.{part}" for c in candidates])
            chosen = (template, template.name.split("/", 1)[0] if template.name else DEFAULT_LOCALE)
            if len(self._chosen) >= _CHOSEN_MAX:
                self._chosen.clear()
            self._chosen[key] = chosen
        template, used = chosen
        return template.render(context), used

    def render_sms(self, kind: NotificationKind, locale: str, context: Mapping[str, Any]) -> RenderedSms:
        body, used = self._render_part(kind, SMS_PART, locale, context)
        # One paragraph: line breaks in a text message only cost characters.
        return RenderedSms(body=one_line(body), locale=used)

    def render(self, kind: NotificationKind, locale: str, context: Mapping[str, Any]) -> RenderedEmail:
        parts: dict[str, str] = {}
        used = DEFAULT_LOCALE
        for part in EMAIL_PARTS:
            parts[part], part_locale = self._render_part(kind, part, locale, context)
            if part == "txt":
                used = part_locale
        return RenderedEmail(
            subject=one_line(parts["subject.txt"]),
            text=parts["txt"].strip() + "\n",
            html=parts["html"],
            locale=used,
        )


def one_line(value: str) -> str:
    """Whitespace (line breaks included) collapsed: a subject must never break the header."""
    return " ".join(value.split())
