"""The token programs: rotate (the new token arrives on stdin after the program) and check (mode, age, a live
login, GitHub's view of the token, asked from the VPS), and the verdict on what they report."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import BAD_INPUT, REMOTE_FAILED, WARNING, ToolError
from ..target import Target
from .declare import Intent
from .protocol import Program, Result, report
from .state import rotated_at

WARN_DAYS = 14   # a token expiring within this many days is warned of (deploy, token-status, doctor, rotate-token)


def _registry_head(target: Target) -> dict:
    registry = target.host.registry
    return {"STATE": target.state_dir, "SECRETS": target.secrets, "REGISTRY": registry.server,
            "REGISTRY_USER": registry.username}


def rotate_program(target: Target, intent: Intent, github_api: str = "", revoke: bool = False) -> Program:
    """Replace the token file only after the new token (read from stdin, after this program) logged in for
    real with a throw-away docker config and, for a GitHub token (``github_api``), GitHub says it has neither
    expired nor lacks read:packages; the old file and login stay exactly as they were otherwise. With
    ``revoke``, the new token also pulls the running release's images, then the old one is revoked."""
    head = {**_registry_head(target), "ACTION": intent.action, "META": intent.meta(), "GITHUB_API": github_api,
            **({"REVOKE": "1", "APP_REPOS": " ".join(f"{a.name}={target.image_repo(a)}" for a in target.system.apps())}
               if revoke else {})}
    return Program(f"rotate-token on {target.label}", head).step("begin").step("need_docker").step("rotate_token")


@report
def rotated(result: Result, warn_days: int = WARN_DAYS) -> str:
    """rotate-token's line for a host; a revoke that GitHub did not take, or a new token GitHub says expires
    within ``warn_days``, is a warning (the rotation stands)."""
    revoked, api = result.one("revoked"), ApiAnswer.parse(result)
    line = "token replaced and proven" + ("; the old one revoked" if revoked and revoked["status"] == "202" else "")
    soon = api.findings(warn_days, datetime.now(timezone.utc))[1] if api and api.status == "200" else []
    warnings = [f"the new token {w} (GitHub says so): rotate again before then" for w in soon]
    if revoked and revoked["status"] != "202":
        warnings.append(f"GitHub did not revoke the old one ({unrevoked(revoked)}): revoke it at "
                        "https://github.com/settings/tokens")
    if warnings:
        raise ToolError(f"{line}, but " + "; ".join(warnings), WARNING)
    return line


UNTRUSTED = {"35", "51", "58", "60", "77", "83", "90", "91"}   # curl's exit codes for a TLS connection refused


def unrevoked(revoked: dict) -> str:
    """Why a revoke did not happen: GitHub's answer, or why none came (the old token was not sent then)."""
    if revoked["status"] != "000":
        return f"it answered {revoked['status']}"
    if revoked.get("curl") in UNTRUSTED:
        return "its certificate is not trusted by the VPS: nothing was sent"
    return f"no answer: curl failed with exit code {revoked.get('curl', '?')}"


def check_program(target: Target, github_api: str) -> Program:
    """Read-only: the token file's mode and age, a live login, and GitHub's expiry and scopes (if asked)."""
    return Program(f"token-status on {target.label}", {**_registry_head(target), "GITHUB_API": github_api}) \
        .step("token_check")


@dataclass
class ApiAnswer:
    """GitHub's answer about a token: HTTP status, expiry header (absent: never expires), scopes header."""
    status: str
    expiry: str
    scopes: list[str]

    @classmethod
    @report
    def parse(cls, result: Result) -> ApiAnswer | None:
        api = result.one("api")
        if not api or api.get("unreachable"):
            return None
        return cls(api.get("status", ""), api.get("expiry", ""),
                   [x.strip() for x in api.get("scopes", "").split(",") if x.strip()])

    def expires(self) -> datetime | None:
        """When GitHub says the token expires (None: never)."""
        if not self.expiry:
            return None
        return datetime.strptime(self.expiry.replace(" UTC", "").strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)

    def unusable(self, now: datetime) -> bool:
        """GitHub refuses it, it has expired, or it cannot read packages: no pull will work with it."""
        when = self.expires()
        return self.status != "200" or (when is not None and when <= now) or "read:packages" not in self.scopes

    def findings(self, warn_days: int, now: datetime) -> tuple[list[str], list[str]]:
        """What the answer says of the token, and what of that deserves a warning."""
        if self.status != "200":
            return [], [f"the GitHub API answered {self.status or 'nothing'} for this token: expiry and scopes unknown"]
        facts, warnings = [], []
        when = self.expires()
        if when:
            days = (when - now).days
            if when <= now:
                facts.append(f"expired {when:%Y-%m-%d}")
                warnings.append(f"expired {-days} days ago")
            else:
                facts.append(f"expires {when:%Y-%m-%d} (in {days} days)")
                if days <= warn_days:
                    warnings.append(f"expires in {days} days")
        else:
            facts.append("no expiry")
        if "read:packages" not in self.scopes:
            warnings.append(f"scopes {', '.join(self.scopes) or 'none'} lack read:packages")
        return facts, warnings


@report
def describe(result: Result, warn_days: int, now: datetime | None = None) -> str:
    """One line on a token from what token_check reported; raises ToolError for a problem (exit 2: a token
    GitHub calls expired or without read:packages, as a deploy refuses it) or a warning (exit 8)."""
    now = now or datetime.now(timezone.utc)
    file = result.one("file") or {"missing": "1"}
    if file.get("missing"):
        raise ToolError("token file missing", BAD_INPUT)
    mode, dir_mode = file["mode"], file["dir_mode"]
    if mode[-2:] != "00" or dir_mode[-2:] != "00":
        raise ToolError(f"token file mode {mode} (folder {dir_mode}) is open to others", BAD_INPUT)
    rotated = rotated_at(result.one("rotated"))
    written = datetime.fromtimestamp(rotated if rotated is not None else int(file["mtime"]), timezone.utc)
    parts = [f"mode {mode}", f"{(now - written).days} days old ({'rotated' if rotated else 'file written'} {written:%Y-%m-%d})"]
    login = result.one("login") or {}
    if login.get("result") != "ok":
        raise ToolError(f"login fails now: {login.get('error') or 'no token line'}", REMOTE_FAILED)
    parts.append("login ok")
    api = ApiAnswer.parse(result)
    if api is None:
        asked = result.one("api") is not None
        parts.append("GitHub API not reachable: expiry unknown" if asked else "expiry unknown: not a GitHub registry, so GitHub is not asked")
        return "; ".join(parts)
    facts, warnings = api.findings(warn_days, now)
    parts += facts
    if api.status == "200" and api.unusable(now):   # (GitHub's word decides: no pull works with it)
        raise ToolError("; ".join(parts) + " — FAIL: " + "; ".join(warnings) + ": no pull works with it; give "
                        "the host a new token: fab rotate-token", BAD_INPUT)
    if warnings:
        raise ToolError("; ".join(parts) + " — WARNING: " + "; ".join(warnings), WARNING)
    return "; ".join(parts)


def deploy_warning(result: Result, warn_days: int = WARN_DAYS) -> str | None:
    """deploy's version of token-status's warning, from the probe that ran during the deploy."""
    api = ApiAnswer.parse(result)
    if api is None:
        return None
    facts, warnings = api.findings(warn_days, datetime.now(timezone.utc))
    return f"the GHCR token {'; '.join(warnings)} ({'; '.join(facts)}): run fab rotate-token" if warnings else None
