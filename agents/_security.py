"""Security: screens text and target jobs with regex rules for PII, secrets and discriminatory phrasing."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from baton.v1 import common_pb2, security_pb2, security_pb2_grpc

from agents._jobs import JobCatalog
from agents._runtime import AgentRuntime, invalid_argument, operation, quality, require_user_id

#: The largest content screened, in characters.
MAX_CONTENT = 1_000_000
#: The most job ids one screen may name.
MAX_JOBS = 1_000
#: Screens over which threat_level and active_incidents are measured.
RECENT_SCREENS = 100

_SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _mask_digits(text: str, keep: int = 4) -> str:
    """Masks every digit but the last `keep`, keeping separators (***-**-6789)."""
    total = sum(ch.isdigit() for ch in text)
    seen = 0
    masked = []
    for ch in text:
        if ch.isdigit():
            seen += 1
            masked.append(ch if seen > total - keep else "*")
        else:
            masked.append(ch)
    return "".join(masked)


def _luhn(digits: str) -> bool:
    """Whether a card number passes the Luhn checksum, which random digit runs rarely do."""
    total = 0
    for index, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card(found: re.Match[str]) -> str | None:
    digits = re.sub(r"\D", "", found.group())
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return f"credit-card-like number {_mask_digits(found.group())}"
    return None


def _secret(found: re.Match[str]) -> str | None:
    return f"credential in clear text: {found.group('label')}: ********"


def _quoted(description: str) -> Callable[[re.Match[str]], str | None]:
    def detail(found: re.Match[str]) -> str | None:
        return f"{description}: {found.group().strip()!r}"

    return detail


@dataclass(frozen=True)
class Rule:
    """One screening rule: a pattern, how severe a match is, and the masked detail of a match."""

    name: str
    """The rule's name, e.g. ``pii.ssn``."""
    pattern: re.Pattern[str]
    """What it looks for."""
    severity: str
    """low, medium, high or critical."""
    detail: Callable[[re.Match[str]], str | None]
    """The finding's detail with sensitive parts masked; None when the match is a false alarm."""
    in_jobs: bool = False
    """Whether the rule also screens the descriptions of the target jobs."""


RULES: tuple[Rule, ...] = (
    Rule(
        "pii.ssn",
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
        "critical",
        lambda m: f"SSN-like number {_mask_digits(m.group())}",
    ),
    Rule("pii.credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), "critical", _card),
    Rule(
        "credential.secret",
        re.compile(r"\b(?P<label>password|passwd|api[_ -]?key|secret[_ -]?key|access[_ -]?token)\s*[:=]\s*\S+", re.I),
        "critical",
        _secret,
    ),
    Rule(
        "pii.passport",
        re.compile(r"\bpassport(?:\s+(?:no\.?|number|#))?\s*[:#]?\s*[A-Z0-9]{6,9}\b", re.I),
        "high",
        lambda m: "passport number " + re.sub(r"[A-Z0-9](?=[A-Z0-9]{2})", "*", m.group().split()[-1]),
    ),
    Rule(
        "pii.date_of_birth",
        re.compile(r"\b(?:date of birth|d\.?o\.?b\.?|born on)\s*[:-]?\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", re.I),
        "medium",
        lambda m: "date of birth **/**/****",
    ),
    Rule(
        "discrimination.age",
        re.compile(
            r"\b(?:young and energetic|digital natives?|recent (?:college )?graduates only"
            r"|(?:under|below|no older than)\s+\d{2}(?:\s+years(?:\s+old)?)?)\b",
            re.I,
        ),
        "high",
        _quoted("age-discriminatory phrase"),
        in_jobs=True,
    ),
    Rule(
        "discrimination.gender",
        re.compile(r"\b(?:(?:male|female|men|women)(?:\s+candidates)?\s+only|no (?:women|men|mothers))\b", re.I),
        "high",
        _quoted("gender-discriminatory phrase"),
        in_jobs=True,
    ),
    Rule(
        "discrimination.origin",
        re.compile(r"\b(?:native (?:english )?speakers? only|no (?:immigrants|foreigners))\b", re.I),
        "high",
        _quoted("national-origin-discriminatory phrase"),
        in_jobs=True,
    ),
    Rule(
        "discrimination.religion_or_race",
        re.compile(
            r"\b(?:christians?|muslims?|jews|jewish|hindus?|whites?|blacks?|asians?)\s+(?:candidates\s+)?only\b", re.I
        ),
        "high",
        _quoted("religion- or race-discriminatory phrase"),
        in_jobs=True,
    ),
    Rule(
        "discrimination.family_status",
        re.compile(r"\b(?:no (?:kids|children)|must not be pregnant|unmarried (?:candidates )?only)\b", re.I),
        "high",
        _quoted("family-status-discriminatory phrase"),
        in_jobs=True,
    ),
)


def verdict(findings: list[security_pb2.Finding]) -> security_pb2.ComplianceStatus:
    """Returns the verdict of a screen: a critical finding forbids going on, any other needs review."""
    if any(f.severity == "critical" for f in findings):
        return security_pb2.COMPLIANCE_STATUS_NON_COMPLIANT
    if findings:
        return security_pb2.COMPLIANCE_STATUS_AT_RISK
    return security_pb2.COMPLIANCE_STATUS_COMPLIANT


def screen_text(text: str, where: str, jobs_only: bool = False) -> list[security_pb2.Finding]:
    """Returns the findings of the rules in `text`; `where` says where the text came from."""
    findings = []
    for rule in RULES:
        if jobs_only and not rule.in_jobs:
            continue
        for found in rule.pattern.finditer(text):
            detail = rule.detail(found)
            if detail is not None:
                findings.append(
                    security_pb2.Finding(rule=rule.name, detail=f"{detail} ({where})", severity=rule.severity)
                )
    return findings


class SecurityServicer(security_pb2_grpc.SecurityServicer):
    """Screens content and target jobs before anything is submitted."""

    def __init__(self, catalog: JobCatalog) -> None:
        self.runtime = AgentRuntime("security", ("ScreenCompliance",))
        self._catalog = catalog
        self._recent: deque[int] = deque(maxlen=RECENT_SCREENS)
        self._screens = 0

    @operation
    def ScreenCompliance(
        self, request: security_pb2.ScreenComplianceRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.ScreenComplianceResponse:
        """Returns the findings and the verdict on the content and the target jobs."""
        require_user_id(request.user_id)
        if len(request.content) > MAX_CONTENT:
            raise invalid_argument("content", f"has {len(request.content)} characters; at most {MAX_CONTENT}")
        if len(request.job_ids) > MAX_JOBS:
            raise invalid_argument("job_ids", f"names {len(request.job_ids)} jobs; at most {MAX_JOBS} are allowed")
        findings = []
        for number, line in enumerate(request.content.splitlines(), start=1):
            findings += screen_text(line, f"content line {number}")
        known = 0
        job_ids = list(dict.fromkeys(j for j in request.job_ids if j))
        for job_id in job_ids:
            posting = self._catalog.get(job_id)
            if posting is not None:
                known += 1
                findings += screen_text(posting.description, f"job {job_id}", jobs_only=True)
        findings.sort(key=lambda f: -_SEVERITY_ORDER[f.severity])
        status = verdict(findings)
        self._recent.append(status)
        self._screens += 1
        # Unknown job ids could not be screened, which the coverage metric admits.
        coverage = 100.0 * known / len(job_ids) if job_ids else 100.0
        return security_pb2.ScreenComplianceResponse(
            compliance_status=status,
            compliant=status != security_pb2.COMPLIANCE_STATUS_NON_COMPLIANT,
            findings=findings,
            quality=quality(accuracy=95.0, coverage=coverage),
        )

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status, with the threat level of its recent screens."""
        incidents = sum(1 for s in self._recent if s == security_pb2.COMPLIANCE_STATUS_NON_COMPLIANT)
        at_risk = sum(1 for s in self._recent if s == security_pb2.COMPLIANCE_STATUS_AT_RISK)
        threat = "low" if incidents == 0 else "medium" if incidents <= 2 else "high" if incidents <= 10 else "critical"
        compliance = "non_compliant" if incidents > 10 else "at_risk" if incidents or at_risk else "compliant"
        return self.runtime.status(
            {
                "threat_level": threat,
                "active_incidents": incidents,
                "compliance_status": compliance,
                "screens": self._screens,
            }
        )
