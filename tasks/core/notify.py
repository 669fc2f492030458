"""hosts.yml's ``notify:``: a JSON POST from the operator's machine (or CI) when a run ends as ``on:`` asks, with a
Slack-compatible ``text`` field. Bounded (a timeout per try, a few retries), never a secret: the payload holds
the run's facts and its error's first line, redacted; the webhook's URL (itself a credential for Slack) is never
printed. A receiver that fails or hangs is said as a warning and never changes the run's result."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .grammar import redact
from .ui import err_console, safe


@dataclass(frozen=True)
class Notify:
    webhook: str | None          # the URL, or None: read from the environment variable webhook_env
    webhook_env: str | None
    on: tuple[str, ...] = ("failure", "warning")   # failure, warning (exit 8), success
    timeout: int = 10            # seconds per try
    retries: int = 2             # tries after the first, 1 s then 2 s apart


def payload(facts: dict[str, str]) -> dict:
    """What the receiver gets: the run's facts (no value of a .env, no token) and a line for people."""
    where = f"{facts['FAB_HOSTS']} ({facts['FAB_SYSTEMS']})"
    what = f" of {facts['FAB_TAGS']}" if facts.get("FAB_TAGS") else ""
    how = {"success": "succeeded", "warning": "succeeded with a warning (exit 8)"}.get(
        end(facts), f"failed (exit {facts['FAB_EXIT']})")
    error = facts.get("FAB_ERROR", "")
    return {"text": f"fab {facts['FAB_ACTION']}{what} on {where} {how}{': ' + error if error else ''}",
            "action": facts["FAB_ACTION"], "release": facts["FAB_RELEASE"], "hosts": facts["FAB_HOSTS"].split(","),
            "systems": facts["FAB_SYSTEMS"].split(","), "tags": facts.get("FAB_TAGS", ""),
            "result": facts["FAB_RESULT"], "exit": int(facts["FAB_EXIT"]), "error": error}


def end(facts: dict[str, str]) -> str:
    """The kind of end ``on:`` chooses from: success, warning (a run that did its work and exited 8: a token
    expiring soon, the scheduled check's reason to notify) or failure."""
    if facts["FAB_RESULT"] != "ok":
        return "failure"
    return "warning" if facts["FAB_EXIT"] != "0" else "success"


def send(notify: Notify | None, facts: dict[str, str]) -> None:
    """POST the run's end to the webhook if ``on:`` asks for it; a failure is said, never raised."""
    if notify is None or end(facts) not in notify.on:
        return
    url = notify.webhook or os.environ.get(notify.webhook_env or "", "")
    if not url:
        err_console.print(f"[bold yellow]warning:[/] notify: {safe(notify.webhook_env)} is not set: no "
                          "notification sent", soft_wrap=True)
        return
    body = json.dumps(payload(facts)).encode()
    why = ""
    for attempt in range(notify.retries + 1):
        if attempt:
            time.sleep(attempt)
        why = _post(url, body, notify.timeout)
        if not why:
            return
    tries = f"{notify.retries + 1} {'try' if not notify.retries else 'tries'}"
    err_console.print(f"[bold yellow]warning:[/] notify: the webhook did not take the notification: "
                      f"{safe(redact(why))} ({tries}; the {facts['FAB_ACTION']}'s result stands)", soft_wrap=True)


def _post(url: str, body: bytes, timeout: int) -> str:
    """One try: "" when the receiver answered 2xx, else why not (never the URL)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", "User-Agent": "fab-vps"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:   # noqa: S310 (https, or http to 127.0.0.1)
            return "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else type(reason).__name__
