"""MkDocs hook: tables generated from robustrl's registries, so the site cannot drift from
the code. A page writes `<!-- robustrl:NAME -->` where table NAME goes."""

from __future__ import annotations

import re
from typing import Any


def _md(headers: list[str], rows: list[list[Any]]) -> str:
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(map(cell, r)) + " |" for r in rows)])


def agents() -> str:
    from robustrl.agents import capability_rows

    keys = ["agent", "agents", "learning", "actions", "ernie", "relabel", "learned reward",
            "summary"]
    return _md(keys, [[row[k] for k in keys] for row in capability_rows()])


def perturbations() -> str:
    from robustrl.perturb.spec import KINDS, SCHEDULE_KEYS, option_text, strength_range

    rows = []
    for name, info in KINDS.items():
        options = ", ".join(f"`{k}=<{option_text(o)}>`"
                            + ("" if o.default is None else f" (default `{o.default}`)")
                            for k, o in info.options.items() if k not in SCHEDULE_KEYS)
        rows.append([f"`{name}`", info.description, strength_range(name), info.units,
                     f"{info.identity:g}", options or "-"])
    return _md(["kind", "what it does", "strength", "unit", "no change at", "options"], rows)


def envs() -> str:
    from robustrl.envs import list_envs, spec

    families: dict[str, list[str]] = {}
    for env_id in list_envs():
        families.setdefault(env_id.split("/", 1)[0], []).append(env_id)
    rows = []
    for family, ids in families.items():
        first = spec(ids[0])
        extras = sorted({spec(i).extra for i in ids if spec(i).extra})
        rows.append([f"`{family}/`", len(ids), first.kind or "-",
                     ", ".join(f"`pip install '{e}'`" for e in extras) or "core",
                     ", ".join(f"`{i}`" for i in ids[:3]) + (", …" if len(ids) > 3 else "")])
    return _md(["family", "ids", "kind", "install", "e.g."], rows)


TABLES = {"agents": agents, "perturbations": perturbations, "envs": envs}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return re.sub(r"<!-- robustrl:(\w+) -->", lambda m: TABLES[m.group(1)](), markdown)
