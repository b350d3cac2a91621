"""DocumentIntelligence: reads a resume's name, sections, skills, titles and dated experience."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources

import grpc
from baton.v1 import common_pb2, document_intelligence_pb2, document_intelligence_pb2_grpc

from agents._runtime import AgentRuntime, invalid_argument, operation, quality, require_user_id
from agents._vocabulary import TITLE_WORDS, normalize_skill, normalize_skills, skill_pattern

#: The largest document accepted, in characters.
MAX_CONTENT = 1_000_000
#: The most target skills an optimization takes, and the longest one, in characters (each is
#: looked for in the whole document).
MAX_TARGETS = 200
MAX_TARGET_LENGTH = 100
#: The fewest skills a complete profile lists.
COMPLETE_SKILLS = 8

# Section headings a resume uses, lower case → the canonical section they start.
_HEADINGS: dict[str, str] = {
    "summary": "summary",
    "profile": "summary",
    "professional summary": "summary",
    "about me": "summary",
    "objective": "summary",
    "experience": "experience",
    "work experience": "experience",
    "professional experience": "experience",
    "employment": "experience",
    "employment history": "experience",
    "work history": "experience",
    "skills": "skills",
    "technical skills": "skills",
    "core skills": "skills",
    "education": "education",
    "certifications": "certifications",
    "certificates": "certifications",
    "projects": "projects",
    "publications": "publications",
    "languages": "languages",
    "awards": "awards",
    "interests": "interests",
    "volunteering": "volunteering",
    "references": "references",
}

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))


def _point(prefix: str) -> str:
    """Returns a regex for one date ("Mar 2021", "03/2021", "2021"), its groups named by `prefix`."""
    return (
        rf"(?<![\w/])(?:(?:(?P<{prefix}m>{_MONTH})\.?\s+|(?P<{prefix}n>0?[1-9]|1[0-2])/)?"
        rf"(?P<{prefix}y>(?:19|20)\d{{2}})(?!\d))"
    )


_RANGE = re.compile(
    _point("s") + r"\s*(?:-|\u2013|\u2014|to|until)\s*" + rf"(?:{_point('e')}|(?P<now>present|current|now|today)\b)",
    re.IGNORECASE,
)
# Every pattern here runs in linear time on any text (a document is up to the message limit, and
# the agents answer from one event loop): a match starts only where its run of characters starts
# (the lookbehinds), and no two adjacent parts can take the same characters.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]?\d{4}\b")
_NAME = re.compile(r"^[A-Z][a-zA-Z'\u2019.-]+(?:\s+[A-Z][a-zA-Z'\u2019.-]+){1,3}$")
_NAME_LINE = re.compile(r"^[ \t]*name[ \t]*:(?P<name>[^\n]*)", re.IGNORECASE | re.MULTILINE)
_TITLE_SPLIT = re.compile(r",|\||\s@\s|\sat\s|\s[-\u2013\u2014]\s|\(")
_WORD = re.compile(r"[a-z]+")
_BULLET = re.compile(r"^\s*[-*•·]")


@dataclass(frozen=True)
class Position:
    """A dated position: months are counted as ``year * 12 + month - 1``."""

    title: str
    start: int
    end: int


@dataclass(frozen=True)
class Analysis:
    """What was read from a document."""

    candidate_name: str
    skills: list[str]
    titles: list[str]
    positions: list[Position]
    years_experience: float
    sections: list[str]
    canonical_sections: frozenset[str]
    has_email: bool
    has_phone: bool
    has_numbers_in_experience: bool
    inconsistencies: int
    word_count: int

    @property
    def profile_completeness(self) -> float:
        """How complete a profile the document gives, from 0 to 100, by weighted checks."""
        checks = (
            (10.0, bool(self.candidate_name)),
            (10.0, self.has_email),
            (5.0, self.has_phone),
            (10.0, "summary" in self.canonical_sections),
            (15.0, "experience" in self.canonical_sections),
            (15.0, bool(self.positions)),
            (10.0, "education" in self.canonical_sections),
            (10.0, bool(self.titles)),
        )
        score = sum(weight for weight, passed in checks if passed)
        return score + 15.0 * min(1.0, len(self.skills) / COMPLETE_SKILLS)

    def quality(self) -> common_pb2.Quality:
        """Returns how trustworthy the analysis is."""
        titled = sum(1 for p in self.positions if p.title)
        accuracy = 100.0 * titled / len(self.positions) if self.positions else 50.0
        consistency = 100.0 - 25.0 * self.inconsistencies
        return quality(accuracy=accuracy, completeness=self.profile_completeness, consistency=consistency)


class DocumentAnalyzer:
    """Parses resumes; `today` dates the positions that are still held."""

    def __init__(self, today: Callable[[], date] = date.today) -> None:
        self._today = today
        self._skills = skill_pattern()

    def analyze(self, text: str) -> Analysis:
        """Returns what `text` says about its candidate."""
        lines = text.splitlines()
        sections, canonical, experience = self._sections(lines)
        today = self._today()
        now = today.year * 12 + today.month - 1
        positions, inconsistencies = self._positions(experience, now)
        titles = list(dict.fromkeys([*self._headline(lines), *(p.title for p in positions if p.title)]))
        experience_text = "\n".join(line for _, line in experience)
        return Analysis(
            candidate_name=self._name(text, lines),
            skills=list(dict.fromkeys(normalize_skill(m.group()) for m in self._skills.finditer(text))),
            titles=titles,
            positions=positions,
            years_experience=round(_merged_months(positions) / 12.0, 1),
            sections=sections,
            canonical_sections=frozenset(canonical),
            has_email=_EMAIL.search(text) is not None,
            has_phone=_PHONE.search(text) is not None,
            has_numbers_in_experience=any(ch.isdigit() for ch in _RANGE.sub("", experience_text)),
            inconsistencies=inconsistencies,
            word_count=len(text.split()),
        )

    @staticmethod
    def _sections(lines: list[str]) -> tuple[list[str], list[str], list[tuple[int, str]]]:
        """Returns the headings as written, their canonical names, and the experience lines."""
        headings: list[str] = []
        canonical: list[str] = []
        experience: list[tuple[int, str]] = []
        current = ""
        for number, line in enumerate(lines):
            stripped = line.strip().rstrip(":").strip()
            key = " ".join(stripped.lower().split())
            if key in _HEADINGS and len(stripped) < 40:
                headings.append(stripped)
                canonical.append(_HEADINGS[key])
                current = _HEADINGS[key]
            elif current == "experience":
                experience.append((number, line))
        if not headings:
            # A document without headings is read as one long experience section.
            experience = list(enumerate(lines))
        return headings, canonical, experience

    @staticmethod
    def _positions(experience: list[tuple[int, str]], now: int) -> tuple[list[Position], int]:
        positions: list[Position] = []
        inconsistencies = 0
        previous = ""
        for _, line in experience:
            found = _RANGE.search(line)
            if found is None:
                if line.strip() and not _BULLET.match(line):
                    previous = line
                continue
            start = _month(found, "s", first=True)
            end = now if found.group("now") else _month(found, "e", first=False)
            if end < start or end > now:
                inconsistencies += 1
                start = min(start, now)
                end = min(max(end, start), now)
            rest = (line[: found.start()] + " " + line[found.end() :]).strip(" |,-\u2013\u2014()")
            title = _title(rest) or _title(previous)
            positions.append(Position(title=title, start=start, end=end))
            previous = ""
        return positions, inconsistencies

    @staticmethod
    def _headline(lines: list[str]) -> list[str]:
        """Returns the title under the name, when the document's first lines give one."""
        for line in [line for line in lines if line.strip()][1:3]:
            if line.strip().rstrip(":").lower() in _HEADINGS:
                break
            title = _title(line)
            if title:
                return [title]
        return []

    @staticmethod
    def _name(text: str, lines: list[str]) -> str:
        for labelled in _NAME_LINE.finditer(text):
            name = labelled.group("name").strip()
            if name:
                return name
        first = next((line.strip() for line in lines if line.strip()), "")
        if _NAME.match(first) and not set(_WORD.findall(first.lower())) & TITLE_WORDS:
            return first
        return ""


def _targets(skills: Sequence[str]) -> list[str]:
    """The target skills of a request, within their bounds."""
    if len(skills) > MAX_TARGETS:
        raise invalid_argument("target_skills", f"has {len(skills)} skills; at most {MAX_TARGETS} are allowed")
    for index, skill in enumerate(skills):
        if len(skill) > MAX_TARGET_LENGTH:
            problem = f"has {len(skill)} characters; at most {MAX_TARGET_LENGTH} are allowed"
            raise invalid_argument(f"target_skills[{index}]", problem)
    return list(skills)


def _month(found: re.Match[str], prefix: str, *, first: bool) -> int:
    """Returns a matched date as a month count; a bare year means January or December."""
    year = int(found.group(f"{prefix}y"))
    if found.group(f"{prefix}m"):
        month = _MONTHS[found.group(f"{prefix}m").lower()]
    elif found.group(f"{prefix}n"):
        month = int(found.group(f"{prefix}n"))
    else:
        month = 1 if first else 12
    return year * 12 + month - 1


def _title(fragment: str) -> str:
    """Returns the first part of `fragment` that names a job title, or ""."""
    for piece in _TITLE_SPLIT.split(fragment):
        part = piece.strip()
        words = set(_WORD.findall(part.lower()))
        if words & TITLE_WORDS and len(part) <= 60 and not _EMAIL.search(part):
            return part
    return ""


def _merged_months(positions: list[Position]) -> int:
    """Returns the months covered by the positions, counting months held in parallel once."""
    total = 0
    last_end = -1
    for position in sorted(positions, key=lambda p: p.start):
        start = max(position.start, last_end + 1)
        if position.end >= start:
            total += position.end - start + 1
        last_end = max(last_end, position.end)
    return total


class DocumentIntelligenceServicer(document_intelligence_pb2_grpc.DocumentIntelligenceServicer):
    """Analyses and optimises resumes; the bundled sample stands in for an empty document."""

    def __init__(self, analyzer: DocumentAnalyzer | None = None) -> None:
        self.runtime = AgentRuntime("document_intelligence", ("AnalyzeDocument", "OptimizeDocument"))
        self._analyzer = analyzer or DocumentAnalyzer()
        self._sample = resources.files("agents").joinpath("data", "sample_resume.txt").read_text("utf-8")
        self._analyzed = 0
        self._optimized = 0
        self._completeness = 0.0

    @operation
    def AnalyzeDocument(
        self, request: document_intelligence_pb2.AnalyzeDocumentRequest, context: grpc.aio.ServicerContext
    ) -> document_intelligence_pb2.AnalyzeDocumentResponse:
        """Returns what the document says about its candidate."""
        require_user_id(request.user_id)
        analysis = self._analyzer.analyze(self._content(request.content))
        self._analyzed += 1
        self._completeness += analysis.profile_completeness
        return document_intelligence_pb2.AnalyzeDocumentResponse(
            document_id=request.document_id or "resume",
            candidate_name=analysis.candidate_name,
            skills=analysis.skills,
            titles=analysis.titles,
            years_experience=analysis.years_experience,
            sections=analysis.sections,
            profile_completeness=round(analysis.profile_completeness, 1),
            word_count=analysis.word_count,
            quality=analysis.quality(),
        )

    @operation
    def OptimizeDocument(
        self, request: document_intelligence_pb2.OptimizeDocumentRequest, context: grpc.aio.ServicerContext
    ) -> document_intelligence_pb2.OptimizeDocumentResponse:
        """Returns the target skills the document misses and how to improve it."""
        require_user_id(request.user_id)
        text = self._content(request.content)
        targets = normalize_skills(_targets(request.target_skills))
        analysis = self._analyzer.analyze(text)
        found = set(analysis.skills)
        lowered = text.lower()
        missing = [
            skill
            for skill in targets
            if skill not in found and not re.search(rf"(?<![\w+#]){re.escape(skill)}(?![\w+#])", lowered)
        ]
        suggestions = [f"Mention {skill} in your skills or experience, if you have used it." for skill in missing[:10]]
        section_fixes = [
            (section, advice)
            for section, advice in (
                ("summary", "Add a Summary section of two or three sentences on what you do best."),
                ("experience", "Add an Experience section with dated positions (Mon YYYY - Mon YYYY)."),
                ("skills", "Add a Skills section listing the tools and technologies you use."),
                ("education", "Add an Education section with your degrees or training."),
            )
            if section not in analysis.canonical_sections
        ]
        suggestions += [advice for _, advice in section_fixes]
        if not analysis.has_email:
            suggestions.append("Add an email address so that employers can reach you.")
        if analysis.positions and not analysis.has_numbers_in_experience:
            suggestions.append("Quantify your achievements with numbers (users, latency, revenue, team size).")
        if analysis.word_count < 200:
            suggestions.append("Expand the document: describe each position in two to four bullet points.")
        elif analysis.word_count > 1000:
            suggestions.append("Shorten the document to the two pages most relevant to your target jobs.")
        coverage = 100.0 * (len(targets) - len(missing)) / len(targets) if targets else 100.0
        completeness = analysis.profile_completeness
        # Each added section is worth about what its completeness check weighs.
        completeness_after = min(100.0, completeness + 12.0 * len(section_fixes) + 10.0 * (not analysis.has_email))
        before = 0.6 * coverage + 0.4 * completeness
        after = 0.6 * 100.0 + 0.4 * completeness_after
        self._optimized += 1
        return document_intelligence_pb2.OptimizeDocumentResponse(
            missing_skills=missing,
            suggestions=suggestions,
            score_before=round(before, 1),
            score_after=round(max(before, after), 1),
            quality=quality(
                relevance=coverage, completeness=completeness, consistency=analysis.quality().metrics["consistency"]
            ),
        )

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status."""
        return self.runtime.status(
            {
                "documents_analyzed": self._analyzed,
                "documents_optimized": self._optimized,
                "mean_profile_completeness": round(self._completeness / self._analyzed, 1) if self._analyzed else 0.0,
            }
        )

    def _content(self, content: str) -> str:
        if len(content) > MAX_CONTENT:
            raise invalid_argument("content", f"has {len(content)} characters; at most {MAX_CONTENT} are allowed")
        return content if content.strip() else self._sample
