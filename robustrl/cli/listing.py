"""What `robustrl envs` and `robustrl perturbations` print: listings that fit a 100-column
terminal, the details behind `robustrl envs show ID`."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from robustrl.cli.table import table

WIDTH = 100


def brief_space(text: str) -> str:
    """A space's str() in short: `Box(-inf, inf, (17,), float64)` -> `Box(17)`,
    `Dict('observation': Box(...(4,)...), ...)` -> `Dict(observation:Box(4), ...)`."""
    text = re.sub(r"Box\([^()]*\(([\d, ]+?),?\), \w+\)",
                  lambda m: "Box(" + "x".join(re.findall(r"\d+", m.group(1))) + ")", text)
    return re.sub(r"'(\w+)': ", r"\1:", text)


def _clip(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + "…"


def fit_table(headers: list[str], rows: list[list[Any]], shrinkable: list[int],
              width: int = WIDTH) -> str:
    """`table()`, with the widest `shrinkable` columns cut (ending in …) until a row fits."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *cells]) for i in range(len(headers))]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        i = max(shrinkable, key=lambda j: widths[j])
        if widths[i] <= len(headers[i]):
            break
        widths[i] -= 1
    return table(headers, [[_clip(c, w) for c, w in zip(row, widths)] for row in cells])


def spaces(env_spec: Any) -> tuple[str, str]:
    """The declared spaces of an id; for ids that declare none (user-registered, `gym/<id>`
    outside the listed ones) those of the env made once, "?" when making it fails."""
    if env_spec.observation_space and env_spec.action_space:
        return env_spec.observation_space, env_spec.action_space
    from robustrl.envs import make

    try:
        env = make(env_spec.id)
    except Exception:  # listing must not fail on one id that cannot be made here
        return "?", "?"
    try:
        if hasattr(env, "possible_agents"):  # ParallelEnv: the first agent's, as the specs
            agent = env.possible_agents[0]
            return str(env.observation_space(agent)), str(env.action_space(agent))
        return str(env.observation_space), str(env.action_space)
    finally:
        env.close()


def envs_listing(ids: list[str]) -> str:
    """One table per family, each fitting `WIDTH` columns (the spaces in short)."""
    from robustrl.envs import spec

    families: dict[str, list[list[str]]] = {}
    for env_id in ids:
        s = spec(env_id)
        obs, act = spaces(s)
        families.setdefault(s.family, []).append(
            [env_id, s.kind or "?", brief_space(obs), brief_space(act), ",".join(s.ranking)])
    headers = ["id", "kind", "observation", "action", "factors (ranked)"]
    return "\n\n".join(fit_table(headers, rows, shrinkable=[2, 3, 4])
                       for rows in families.values())


def env_details(env_id: str) -> str:
    """`robustrl envs show ID`: the whole spec, spaces in full."""
    from robustrl.envs import spec

    s = spec(env_id)
    obs, act = spaces(s)
    lines = [s.id, f"  kind: {s.kind or 'found out when made'}", f"  {s.description}",
             f"  observation space: {obs}", f"  action space: {act}",
             f"  default kwargs: {s.kwargs}"]
    if s.extra:
        lines.append(f"  needs: pip install '{s.extra}'")
    lines.append("  reward factors (default ranking, most important first):")
    order = {name: i for i, name in enumerate(s.ranking)}
    for f in sorted(s.factors, key=lambda f: order.get(f.name, len(order))):
        lines.append(f"    {f.name:<24} {f.direction:<6} {f.description}".rstrip())
    return "\n".join(lines)


def perturbations_listing() -> str:
    """Every perturbation kind: what it does, its strength's range and units, its options."""
    from robustrl.perturb.spec import KINDS, SCHEDULE_KEYS, option_text, strength_range

    wrap = lambda text, indent: textwrap.fill(  # noqa: E731
        text, WIDTH, initial_indent=indent, subsequent_indent=indent + "    ")
    blocks = []
    for name, info in KINDS.items():
        default = "" if info.default is None else f"; default {info.default:g}"
        lines = [name, wrap(info.description, "  "),
                 wrap(f"strength: {strength_range(name)}; unit: {info.units}; "
                      f"{info.identity:g} = no change{default}", "  ")]
        for key, opt in info.options.items():
            if key not in SCHEDULE_KEYS:
                shown = "" if opt.default is None else f" (default {opt.default})"
                lines.append(wrap(f"{key}=<{option_text(opt)}>{shown}: {opt.help}", "  "))
        blocks.append("\n".join(lines))
    any_kind = next(iter(KINDS.values())).options
    schedule = [wrap(f"{key}=<{option_text(any_kind[key])}> (default {any_kind[key].default}): "
                     f"{any_kind[key].help}", "  ") for key in SCHEDULE_KEYS]
    return "\n\n".join([
        "Perturbation specs: kind[:strength][,key=value...], e.g. obs-gaussian:0.1 or\n"
        "dyn-mass:1.5,bodies=torso+thigh (robustrl eval RUN --perturb SPEC; bench suites).",
        *blocks, "\n".join(["every kind also accepts:", *schedule])])
