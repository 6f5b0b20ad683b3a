"""Filters: validation of Plausible's filter lists and their translation to SQL conditions.

A filter is `[operator, dimension, [values...], {"case_sensitive": bool}?]` or a
logical `["and", [...]]`, `["or", [...]]`, `["not", filter]`. Parsed filters
are tuples: `("cmp", op, dim, values, case_sensitive)`, `("and"|"or", [..])`,
`("not", f)`. The SQL side takes a function from dimension to expression, so
the same tree works on event rows and on visit rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from reports.query import dimensions as dims
from reports.query.errors import QueryError
from reports.query.params import Params, wildcard_regex

COMPARE = ("is", "is_not", "contains", "contains_not", "matches", "matches_not", "matches_wildcard",
           "matches_wildcard_not")
LOGICAL = ("and", "or", "not")
MAX_DEPTH = 8


def _show(value) -> str:
    return json.dumps(value)[:200]


def parse(raw, depth: int = 0) -> tuple:
    if depth > MAX_DEPTH:
        raise QueryError("filters", "filters are nested too deeply")
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        raise QueryError("filters", f"invalid filter {_show(raw)}, expected [operator, dimension, [values]]")
    op = raw[0]
    if op in ("and", "or"):
        if len(raw) != 2 or not isinstance(raw[1], list) or not raw[1]:
            raise QueryError("filters", f"invalid filter {_show(raw)}: '{op}' takes one non-empty list of filters")
        return (op, [parse(f, depth + 1) for f in raw[1]])
    if op == "not":
        if len(raw) != 2:
            raise QueryError("filters", f"invalid filter {_show(raw)}: 'not' takes one filter")
        return ("not", parse(raw[1], depth + 1))
    if op not in COMPARE:
        raise QueryError("filters", f"unknown operator {op!r} in {_show(raw)}")
    if len(raw) not in (3, 4):
        raise QueryError("filters", f"invalid filter {_show(raw)}, expected [operator, dimension, [values]]")
    dim, values = raw[1], raw[2]
    if not isinstance(dim, str) or not (dims.is_event(dim) or dims.is_visit(dim)):
        raise QueryError("filters", f"invalid filter dimension {_show(dim)}")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise QueryError("filters", f"invalid filter {_show(raw)}: values must be a non-empty list of strings")
    if dim == "visit:country" and op in ("is", "is_not") and not all(len(v) == 2 for v in values):
        raise QueryError("filters", "invalid visit:country filter, visit:country needs to be a valid 2-letter "
                                    "country code")
    case_sensitive = True
    if len(raw) == 4:
        mods = raw[3]
        if not isinstance(mods, dict) or set(mods) - {"case_sensitive"}:
            raise QueryError("filters", f"invalid filter modifiers {_show(mods)}, only case_sensitive is known")
        if not isinstance(mods.get("case_sensitive", True), bool):
            raise QueryError("filters", "case_sensitive must be true or false")
        case_sensitive = mods.get("case_sensitive", True)
    if op in ("matches", "matches_not"):
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise QueryError("filters", f"invalid regular expression {pattern!r}: {exc}") from None
    return ("cmp", op, dim, values, case_sensitive)


def dimensions_in(tree: tuple) -> set[str]:
    if tree[0] == "cmp":
        return {tree[2]}
    if tree[0] == "not":
        return dimensions_in(tree[1])
    return set().union(*(dimensions_in(t) for t in tree[1]))


def is_goal_or_prop(tree: tuple) -> bool:
    return tree[0] == "cmp" and (tree[2] == dims.GOAL or dims.is_prop(tree[2]))


def to_sql(tree: tuple, expr: Callable[[str], str], params: Params, goal: Callable[[tuple], str]) -> str:
    kind = tree[0]
    if kind in ("and", "or"):
        return "(" + f" {kind.upper()} ".join(to_sql(t, expr, params, goal) for t in tree[1]) + ")"
    if kind == "not":
        return f"(NOT {to_sql(tree[1], expr, params, goal)})"
    _, op, dim, values, case_sensitive = tree
    if dim == dims.GOAL:
        return goal(tree)
    negate = op.endswith("_not")
    base = op.removesuffix("_not")
    column = f"coalesce({expr(dim)}, '')"
    if not case_sensitive:
        column = f"lower({column})"

    def value(v: str) -> str:
        return f"lower({params(v)})" if not case_sensitive else params(v)

    if base == "is":
        cond = f"{column} IN ({', '.join(value(v) for v in values)})"
    elif base == "contains":
        cond = "(" + " OR ".join(f"contains({column}, {value(v)})" for v in values) + ")"
    elif base == "matches":
        flag = "" if case_sensitive else "(?i)"
        column = f"coalesce({expr(dim)}, '')"
        cond = "(" + " OR ".join(f"regexp_matches({column}, {params(flag + v)})" for v in values) + ")"
    else:  # matches_wildcard
        flag = "" if case_sensitive else "(?i)"
        column = f"coalesce({expr(dim)}, '')"
        cond = "(" + " OR ".join(f"regexp_full_match({column}, {params(flag + wildcard_regex(v))})"
                                 for v in values) + ")"
    return f"(NOT {cond})" if negate else cond


def match_names(tree: tuple, names: list[str]) -> list[str]:
    """The goal names a comparison on event:goal selects (before any negation)."""
    _, op, _, values, case_sensitive = tree
    base = op.removesuffix("_not")
    fold = (lambda s: s) if case_sensitive else str.lower
    vals = [fold(v) for v in values]
    out = []
    for name in names:
        n = fold(name)
        if base == "is":
            hit = n in vals
        elif base == "contains":
            hit = any(v in n for v in vals)
        elif base == "matches":
            hit = any(re.search(v, n) for v in vals)
        else:
            hit = any(re.fullmatch(wildcard_regex(v), n) for v in vals)
        if hit:
            out.append(name)
    return out
