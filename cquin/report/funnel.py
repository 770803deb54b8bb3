"""Populations as true funnels: chains in which every step is a subset of the one before, read from the rule trees.

A population is *inside* another when its rule guarantees it: an ``all_of`` that names the other population, or a
cohort whose members and whose includes are both required to be in it (``include_requires``).  A cohort whose
includes may come from outside its members' population (the Year 1 cohort: agreed overrides may bring in any
patient served) is not inside that population, so it starts a funnel of its own beside the first instead of
widening it.  Counts along a chain can only fall (and the rounding of disclosure control, being monotonic, keeps
that true of the published counts).
"""

from __future__ import annotations

from typing import Any

from cquin.engine.rules import population_order


def _direct(rule: Any) -> list[str]:
    """Populations a rule's members are guaranteed to be in (one level down)."""
    if not isinstance(rule, dict):
        return []
    if "population" in rule and isinstance(rule["population"], str):
        return [rule["population"]]
    if "all_of" in rule:
        return [p for item in rule["all_of"] for p in _direct(item)]
    return []  # a cohort is handled by parents(): its includes decide


def parents(doc: dict[str, Any]) -> dict[str, str | None]:
    """Each population's nearest enclosing population (None for a root), from the rule trees."""
    pops = doc["populations"]
    ancestors: dict[str, set[str]] = {}
    out: dict[str, str | None] = {}
    for pid in population_order(doc):
        rule = pops[pid]["rule"]
        if isinstance(rule, dict) and "cohort" in rule:
            c = rule["cohort"]
            members = _direct(c.get("members"))
            member_anc = set(members).union(*(ancestors.get(m, set()) for m in members)) if members else set()
            required = _direct(c.get("include_requires"))
            # Inside X only when both the members and every include must be in X.
            inside = [r for r in required if r in member_anc]
        else:
            inside = [p for p in _direct(rule) if p in pops]
        anc = set(inside).union(*(ancestors.get(p, set()) for p in inside)) if inside else set()
        ancestors[pid] = anc
        # The nearest: the enclosing population with the most ancestors of its own.
        out[pid] = max(inside, key=lambda p: len(ancestors.get(p, set())), default=None)
    return out


def chains(doc: dict[str, Any], entity: str, present: set[str]) -> list[list[str]]:
    """Funnels for one entity: from each root, the chain through each first-declared child; then each other child
    as a funnel of its own, starting from its parent."""
    order = [p for p in population_order(doc, entity) if p in present]
    parent = parents(doc)
    children: dict[str | None, list[str]] = {}
    for pid in order:
        children.setdefault(parent.get(pid) if parent.get(pid) in present else None, []).append(pid)

    out: list[list[str]] = []

    def walk(start: list[str]) -> None:
        chain = list(start)
        while kids := children.get(chain[-1], []):
            first, *others = kids  # the first declared continues the funnel; the others branch off beside it
            branches.extend([chain[-1], other] for other in others)
            chain.append(first)
        out.append(chain)

    branches: list[list[str]] = [[root] for root in children.get(None, [])]
    while branches:
        walk(branches.pop(0))
    return out
