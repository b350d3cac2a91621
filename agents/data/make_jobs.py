"""Generates the reference fleet's synthetic job postings (jobs.json) from a seed, deterministically.

Run ``python agents/data/make_jobs.py`` to rewrite ``agents/data/jobs.json``; the same seed and
count always give the same bytes, and a test checks that the committed file is this output.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_SEED = 20250601
DEFAULT_COUNT = 120
DEFAULT_OUT = Path(__file__).with_name("jobs.json")

# Postings are dated back from a fixed day, not from today, so that the output never changes.
_NEWEST = datetime(2025, 6, 1, tzinfo=UTC)

# Role → (skills every posting of the role asks for, skills some postings add, base salary, pitch).
_ROLES: dict[str, tuple[list[str], list[str], int, str]] = {
    "Backend Engineer": (
        ["python", "postgresql", "rest apis"],
        ["go", "java", "redis", "kafka", "grpc", "docker", "kubernetes", "aws", "microservices", "sql"],
        135_000,
        "build the services and APIs behind our product",
    ),
    "Frontend Engineer": (
        ["javascript", "typescript", "react"],
        ["css", "html", "graphql", "webpack", "jest", "accessibility", "vue", "design systems"],
        125_000,
        "craft fast, accessible interfaces used by thousands of customers",
    ),
    "Full Stack Engineer": (
        ["javascript", "python", "react"],
        ["typescript", "node.js", "postgresql", "docker", "aws", "graphql", "django", "rest apis"],
        130_000,
        "ship features end to end, from the database to the browser",
    ),
    "Data Scientist": (
        ["python", "statistics", "machine learning"],
        ["sql", "pandas", "scikit-learn", "r", "a/b testing", "data visualization", "pytorch"],
        140_000,
        "turn our data into models and decisions",
    ),
    "Data Engineer": (
        ["python", "sql", "etl"],
        ["spark", "airflow", "kafka", "snowflake", "dbt", "aws", "scala", "docker"],
        138_000,
        "design the pipelines that feed analytics and machine learning",
    ),
    "Machine Learning Engineer": (
        ["python", "machine learning", "pytorch"],
        ["tensorflow", "mlops", "kubernetes", "docker", "deep learning", "nlp", "aws", "spark"],
        155_000,
        "take models from notebooks to production at scale",
    ),
    "Site Reliability Engineer": (
        ["kubernetes", "linux", "observability"],
        ["terraform", "aws", "gcp", "prometheus", "grafana", "go", "python", "bash", "ci/cd"],
        145_000,
        "keep our platform fast and available",
    ),
    "DevOps Engineer": (
        ["docker", "ci/cd", "terraform"],
        ["kubernetes", "aws", "azure", "ansible", "linux", "bash", "python", "git"],
        130_000,
        "automate how we build, test and deploy",
    ),
    "Mobile Engineer": (
        ["ios", "android"],
        ["swift", "kotlin", "react native", "rest apis", "ci/cd", "accessibility"],
        132_000,
        "build our mobile apps for iOS and Android",
    ),
    "Security Engineer": (
        ["security", "network security"],
        ["penetration testing", "cloud security", "iam", "siem", "python", "aws", "linux"],
        150_000,
        "protect our customers' data and our infrastructure",
    ),
    "Product Manager": (
        ["product management", "roadmapping", "stakeholder management"],
        ["agile", "sql", "user research", "a/b testing", "communication", "data visualization"],
        140_000,
        "own the roadmap of a product area",
    ),
    "UX Designer": (
        ["figma", "user research", "prototyping"],
        ["interaction design", "design systems", "accessibility", "communication"],
        115_000,
        "design experiences that are simple and delightful",
    ),
    "QA Engineer": (
        ["test automation", "ci/cd"],
        ["selenium", "cypress", "python", "java", "javascript", "jest", "git"],
        105_000,
        "make quality everyone's habit through great test automation",
    ),
    "Data Analyst": (
        ["sql", "excel", "data visualization"],
        ["tableau", "power bi", "python", "statistics", "a/b testing", "communication"],
        95_000,
        "answer the business's questions with data",
    ),
}

# Seniority → (title prefix, salary multiplier, years asked for).
_SENIORITIES: dict[str, tuple[str, float, str]] = {
    "junior": ("Junior ", 0.7, "0-2 years"),
    "mid": ("", 1.0, "2+ years"),
    "senior": ("Senior ", 1.3, "5+ years"),
    "lead": ("Lead ", 1.55, "8+ years"),
}

_COMPANIES = [
    "Northwind Logistics",
    "Contoso Payments",
    "Fabrikam Health",
    "Tailspin Travel",
    "Wingtip Games",
    "Adventure Works",
    "Litware Analytics",
    "Proseware",
    "Lucerne Publishing",
    "Coho Vineyard Tech",
    "Blue Yonder Airlines",
    "Alpine Ski House",
    "Woodgrove Bank",
    "Trey Research",
    "Humongous Insurance",
    "Graphic Design Institute",
    "Fourth Coffee",
    "Margie's Travel",
    "Relecloud",
    "VanArsdel Energy",
    "Datum Robotics",
    "Southridge Video",
    "Consolidated Messenger",
    "Wide World Importers",
    "School of Fine Art Online",
    "Bellows College Labs",
    "Munson's Pickles and Data",
    "Nod Publishers",
    "Tasmanian Traders",
    "Lamna Healthcare",
]

_LOCATIONS = [
    "Seattle, WA",
    "San Francisco, CA",
    "New York, NY",
    "Austin, TX",
    "Boston, MA",
    "Chicago, IL",
    "Denver, CO",
    "Atlanta, GA",
    "Toronto, ON",
    "London, UK",
    "Berlin, DE",
    "Remote",
]

_SOURCES = ["linkedin", "indeed", "glassdoor", "ziprecruiter"]

_PERKS = [
    "We offer flexible hours and a generous learning budget.",
    "Health, dental and vision coverage from day one.",
    "Four-day work weeks in the summer.",
    "Equity for every employee and a yearly team offsite.",
    "Parental leave of 20 weeks and a home-office stipend.",
    "A small team with real ownership and little process.",
]

# A few postings carry phrasing that a compliance screen must flag, as real boards sometimes do.
_RED_FLAGS = [
    "We are looking for young and energetic people to join us.",
    "Recent graduates only.",
    "Native English speakers only.",
]


def make_jobs(seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT) -> list[dict[str, Any]]:
    """Returns `count` synthetic job postings drawn from `seed`.

    Args:
        seed: The seed of the random generator; the same seed gives the same postings.
        count: The number of postings.

    Returns:
        The postings as JSON-ready dictionaries, newest first.
    """
    rng = random.Random(seed)
    roles = sorted(_ROLES)
    jobs: list[dict[str, Any]] = []
    for index in range(count):
        role = roles[index % len(roles)] if index < len(roles) else rng.choice(roles)
        required, optional, base_salary, pitch = _ROLES[role]
        seniority = rng.choice(list(_SENIORITIES))
        prefix, multiplier, years = _SENIORITIES[seniority]
        company = rng.choice(_COMPANIES)
        location = rng.choice(_LOCATIONS)
        remote = location == "Remote" or rng.random() < 0.3
        skills = required + rng.sample(optional, k=rng.randint(2, min(5, len(optional))))
        salary_min = round(base_salary * multiplier * rng.uniform(0.9, 1.1), -3)
        salary_max = round(salary_min * rng.uniform(1.15, 1.4), -3)
        posted_at = _NEWEST - timedelta(days=rng.randint(0, 45), hours=rng.randint(0, 23))
        title = prefix + role
        sentences = [
            f"{company} is hiring a {title} to {pitch}.",
            f"You bring {years} of experience with {', '.join(skills[:-1])} and {skills[-1]}.",
            "This role is fully remote." if remote else f"This role is based in {location}.",
            rng.choice(_PERKS),
        ]
        if rng.random() < 0.03:
            sentences.insert(2, rng.choice(_RED_FLAGS))
        jobs.append(
            {
                "job_id": f"job-{index + 1:04d}",
                "title": title,
                "company": company,
                "location": location,
                "remote": remote,
                "skills": skills,
                "description": " ".join(sentences),
                "source": rng.choice(_SOURCES),
                "salary_min": int(salary_min),
                "salary_max": int(salary_max),
                "posted_at": posted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seniority": seniority,
            }
        )
    jobs.sort(key=lambda job: (job["posted_at"], job["job_id"]), reverse=True)
    return jobs


def render(jobs: list[dict[str, Any]]) -> str:
    """Returns the postings as the exact text of jobs.json."""
    return json.dumps({"jobs": jobs}, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Writes jobs.json; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="postings (default %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: jobs.json here)")
    args = parser.parse_args(argv)
    args.out.write_text(render(make_jobs(args.seed, args.count)), encoding="utf-8")


if __name__ == "__main__":
    main()
