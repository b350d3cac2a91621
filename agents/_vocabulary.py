"""The skill and title vocabulary that the document, search and matching agents share."""

from __future__ import annotations

import re
from types import MappingProxyType

# Canonical skill → the other spellings that mean it. Canonical names are lower case and are what
# every agent reports; aliases only widen what the document parser recognises.
_SKILLS: dict[str, tuple[str, ...]] = {
    "python": (),
    "go": ("golang",),
    "java": (),
    "scala": (),
    "kotlin": (),
    "swift": (),
    "rust": (),
    "c++": ("cpp",),
    "c#": ("csharp",),
    "ruby": (),
    "php": (),
    "r": (),
    "bash": ("shell scripting",),
    "sql": (),
    "javascript": ("js", "ecmascript"),
    "typescript": ("ts",),
    "html": ("html5",),
    "css": ("css3", "sass"),
    "react": ("react.js", "reactjs"),
    "react native": (),
    "vue": ("vue.js", "vuejs"),
    "angular": (),
    "node.js": ("nodejs", "node"),
    "graphql": (),
    "webpack": (),
    "jest": (),
    "django": (),
    "flask": (),
    "fastapi": (),
    "spring": ("spring boot",),
    "rest apis": ("rest", "restful apis", "rest api"),
    "grpc": (),
    "microservices": ("microservice architecture",),
    "postgresql": ("postgres",),
    "mysql": (),
    "mongodb": ("mongo",),
    "redis": (),
    "elasticsearch": ("elastic search",),
    "kafka": ("apache kafka",),
    "rabbitmq": (),
    "spark": ("apache spark", "pyspark"),
    "airflow": ("apache airflow",),
    "dbt": (),
    "snowflake": (),
    "etl": ("elt",),
    "docker": (),
    "kubernetes": ("k8s",),
    "terraform": (),
    "ansible": (),
    "aws": ("amazon web services",),
    "gcp": ("google cloud", "google cloud platform"),
    "azure": ("microsoft azure",),
    "linux": (),
    "git": (),
    "ci/cd": ("continuous integration", "continuous delivery"),
    "prometheus": (),
    "grafana": (),
    "observability": (),
    "machine learning": ("ml",),
    "deep learning": (),
    "nlp": ("natural language processing",),
    "mlops": (),
    "pytorch": (),
    "tensorflow": (),
    "scikit-learn": ("sklearn", "scikit learn"),
    "pandas": (),
    "numpy": (),
    "statistics": ("statistical modeling", "statistical analysis"),
    "data visualization": ("data visualisation",),
    "a/b testing": ("ab testing", "experimentation"),
    "tableau": (),
    "power bi": ("powerbi",),
    "excel": (),
    "ios": (),
    "android": (),
    "selenium": (),
    "cypress": (),
    "test automation": ("automated testing",),
    "security": ("information security", "infosec"),
    "penetration testing": ("pentesting", "pen testing"),
    "network security": (),
    "cloud security": (),
    "iam": ("identity and access management",),
    "siem": (),
    "product management": (),
    "roadmapping": ("product roadmaps", "roadmaps"),
    "agile": ("scrum", "kanban"),
    "user research": ("usability testing",),
    "stakeholder management": (),
    "figma": (),
    "prototyping": (),
    "interaction design": (),
    "design systems": ("design system",),
    "accessibility": ("a11y", "wcag"),
    "communication": (),
    "leadership": ("team leadership", "mentoring"),
}

# Skills whose names are also ordinary English words or letters ("Go", "R", "REST", "TS"): they
# are recognised in a document only when written exactly as a technologist writes them.
_CASE_SENSITIVE = frozenset({"go", "r", "rest", "ts", "js", "node", "ml", "mongo"})

#: Canonical skill names, lower case, in vocabulary order.
SKILLS: tuple[str, ...] = tuple(_SKILLS)

#: Every known spelling (lower case) → its canonical skill.
SKILL_ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {alias: canonical for canonical, aliases in _SKILLS.items() for alias in (canonical, *aliases)}
)

#: Words that make a line fragment a job title.
TITLE_WORDS: frozenset[str] = frozenset(
    {
        "engineer",
        "developer",
        "programmer",
        "architect",
        "manager",
        "analyst",
        "scientist",
        "designer",
        "consultant",
        "administrator",
        "specialist",
        "intern",
        "director",
        "lead",
        "head",
        "officer",
        "researcher",
        "sre",
        "tester",
        "technician",
        "coordinator",
    }
)

#: Words that say how senior a title is, not what the job is; title comparison ignores them.
SENIORITY_WORDS: frozenset[str] = frozenset(
    {"junior", "jr", "mid", "senior", "sr", "lead", "principal", "staff", "ii", "iii", "iv", "i"}
)

# Words that name the same kind of job; the left side is replaced by the right for comparison.
_TITLE_SYNONYMS: dict[str, str] = {
    "developer": "engineer",
    "programmer": "engineer",
    "dev": "engineer",
    "swe": "engineer",
    "sre": "reliability",
    "back-end": "backend",
    "front-end": "frontend",
    "fullstack": "full-stack",
}

_WORD = re.compile(r"[a-z0-9+#./-]+")


def normalize_skill(skill: str) -> str:
    """Returns the canonical name of `skill`: lower case, trimmed, aliases resolved.

    Args:
        skill: A skill as a user or a posting wrote it.

    Returns:
        The canonical name when the vocabulary knows the skill, else the trimmed lower-case text.
    """
    key = " ".join(skill.lower().split())
    return SKILL_ALIASES.get(key, key)


def normalize_skills(skills: list[str] | tuple[str, ...]) -> list[str]:
    """Returns the canonical names of `skills`, each once, in order, empty entries dropped."""
    seen: dict[str, None] = {}
    for skill in skills:
        name = normalize_skill(skill)
        if name:
            seen.setdefault(name, None)
    return list(seen)


def title_tokens(title: str) -> frozenset[str]:
    """Returns the words that say what a job title is, without seniority words, synonyms merged.

    Args:
        title: A job title, e.g. ``"Senior Back-end Developer"``.

    Returns:
        The title's core words, e.g. ``{"backend", "engineer"}``.
    """
    words = (_TITLE_SYNONYMS.get(w, w) for w in _WORD.findall(title.lower()))
    return frozenset(w for w in words if w not in SENIORITY_WORDS)


def skill_pattern() -> re.Pattern[str]:
    """Returns a regex whose matches are skill mentions in free text.

    A match's text resolves to its canonical skill with :func:`normalize_skill`. Longer spellings
    come first so that "react native" wins over "react".
    """
    insensitive = sorted((a for a in SKILL_ALIASES if a not in _CASE_SENSITIVE), key=len, reverse=True)
    sensitive = sorted((_exact_case(a) for a in SKILL_ALIASES if a in _CASE_SENSITIVE), key=len, reverse=True)
    alternatives = [f"(?i:{re.escape(a)})" for a in insensitive] + [re.escape(a) for a in sensitive]
    # A skill must not be glued to other word characters; "+" and "#" count as word characters so
    # that "c" never matches inside "c++" and "go" never inside "go-to".
    return re.compile(r"(?<![\w+#/.&-])(?:" + "|".join(alternatives) + r")(?![\w+#/&-])")


def _exact_case(alias: str) -> str:
    """Returns how a case-sensitive alias is written in documents ("Go", "R", "REST", "JS")."""
    return {"go": "Go", "r": "R", "rest": "REST", "ts": "TS", "js": "JS", "node": "Node", "ml": "ML"}.get(
        alias, alias.capitalize()
    )
