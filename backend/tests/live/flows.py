"""Walking the authorization endpoint's HTML pages without a browser.

A `requests.Session` plays a browser without JavaScript: it follows the
server's redirects, fills the sign-in form, answers the consent form (CSRF
tokens read from the pages' hidden fields) and stops at the redirect to the
client, whose URL it returns. tests/live/test_browser.py does the same in Chromium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden and text inputs: name -> value
    buttons: dict[str, str] = field(default_factory=dict)  # submit button value -> its name


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons[a.get("value", "")] = a["name"]


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def authorize(http: requests.Session, authorize_url: str, *, email: str, password: str,
              decision: str = "allow", max_steps: int = 10) -> str:
    """Follow `authorize_url` through sign-in and consent; return the URL the server sends the browser to
    on the client (its redirect URI with code or error). Pages on the way must be 200s with a form."""
    server = _origin(authorize_url)
    response = http.get(authorize_url, allow_redirects=False)
    for _ in range(max_steps):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if _origin(location) != server:
                return location
            response = http.get(location, allow_redirects=False)
            continue
        assert response.status_code == 200, f"{response.url}: {response.status_code} {response.text[:500]}"
        forms = [f for f in forms_of(response.text) if f.method == "post"]
        assert len(forms) == 1, f"{response.url}: expected one form, got {forms!r}\n{response.text[:500]}"
        form = forms[0]
        data = dict(form.fields)
        if "email" in data:  # the sign-in page: its first step takes the email and the password together
            data.update(email=email, password=password)
        else:  # the consent page: press the Allow or Deny button
            assert decision in form.buttons, f"{response.url}: no {decision!r} button in {form.buttons!r}"
            data[form.buttons[decision]] = decision
        response = http.post(urljoin(response.url, form.action), data=data, allow_redirects=False)
    raise AssertionError(f"no redirect to the client after {max_steps} steps; last page {response.url}")
