"""Compile a typed `StoreQuery` into SQLite SQL over the index tables of `sqlite.py`.

The most selective positive clause becomes `r.id IN (SELECT id FROM idx_... WHERE type = ?
AND param = ? ... UNION ALL ...)`, run once through its `(type, param, value...)` index; the
resources it yields are probed by primary key, and every other clause is a correlated
`EXISTS` on the candidate's own index rows (`NOT` when negated, which also keeps resources
lacking the parameter). Without statistics SQLite cannot pick the driver itself, so a rank
of predicate kinds does (ids, exact values, prefixes, date ranges, the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.fhir.search.model import (
    Clause,
    DateMatch,
    IdMatch,
    Predicate,
    ReferenceMatch,
    SortKey,
    StoreQuery,
    StringMatch,
    TokenMatch,
)

SqlParam = str | int | None

RESOURCE_COLUMNS = ("r.type, r.id, r.version_id, r.last_updated, r.deleted, r.method, "
                    "r.body, r.patients")

# Per sort kind: the index table, the aggregate and column for ascending and descending order.
_SORT_SOURCES: dict[str, tuple[str, str, str]] = {
    "date": ("idx_date", "MIN(low)", "MAX(high)"),
    "string": ("idx_string", "MIN(normalized)", "MAX(normalized)"),
    "token": ("idx_token", "MIN(code)", "MAX(code)"),
    "reference": ("idx_reference", "MIN(target_id)", "MAX(target_id)"),
}


@dataclass(frozen=True, slots=True)
class Sql:
    """A SQL fragment and its positional parameters, in order."""

    text: str
    params: tuple[SqlParam, ...] = ()


def compile_search(query: StoreQuery) -> tuple[Sql, Sql]:
    """The page query and the count query of a search (the count is run only when asked)."""
    where = compile_where(query)
    # With a positive clause the matching ids drive the plan; an ORDER BY the planner could
    # serve from `resources_type_updated` would tempt it to walk every resource of the type.
    driven = any(clause.any_of and not clause.negate for clause in query.where)
    order = compile_order(query.sort, ids_drive=driven)
    page = Sql(
        f"SELECT {RESOURCE_COLUMNS} FROM resources r WHERE {where.text} "
        f"ORDER BY {order.text} LIMIT ? OFFSET ?",
        where.params + order.params + (max(query.limit, 0), max(query.offset, 0)),
    )
    count = Sql(f"SELECT COUNT(*) FROM resources r WHERE {where.text}", where.params)
    return page, count


def compile_where(query: StoreQuery) -> Sql:
    """Current, non-deleted resources of the type, and every clause (AND).

    The most selective positive clause drives the plan as `r.id IN (...)`; every other clause
    is checked per candidate with a correlated `EXISTS` on the `(type, id, param)` owner
    indexes, so a broad date range never materializes thousands of ids.
    """
    parts = ["r.type = ?", "r.deleted = 0"]
    params: list[SqlParam] = [query.resource_type]
    driver = _driving_clause(query.where)
    for position, clause in enumerate(query.where):
        if position == driver:
            sql = _compile_clause(query.resource_type, clause)
        else:
            sql = _compile_correlated_clause(clause)
        parts.append(sql.text)
        params.extend(sql.params)
    return Sql(" AND ".join(parts), tuple(params))


def _selectivity_rank(predicate: Predicate) -> int:
    """Lower is more selective: ids; references and system-qualified codes; bare codes
    (often a status); prefixes; date ranges; the rest."""
    if isinstance(predicate, IdMatch):
        return 0
    if isinstance(predicate, ReferenceMatch) or (
            isinstance(predicate, StringMatch) and predicate.mode == "exact") or (
            isinstance(predicate, TokenMatch) and predicate.code is not None
            and predicate.system):
        return 1
    if isinstance(predicate, TokenMatch) and predicate.code is not None:
        return 2
    if isinstance(predicate, StringMatch) and predicate.mode == "startswith":
        return 3
    if isinstance(predicate, DateMatch):
        return 4
    return 5


def _driving_clause(clauses: tuple[Clause, ...]) -> int | None:
    """The position of the positive clause whose matches are likely fewest, if any."""
    ranked = [(max(_selectivity_rank(p) for p in clause.any_of), position)
              for position, clause in enumerate(clauses) if clause.any_of and not clause.negate]
    return min(ranked)[1] if ranked else None


def _compile_clause(resource_type: str, clause: Clause) -> Sql:
    """`r.id [NOT] IN` the union of each predicate's ids (NOT also keeps resources lacking it)."""
    if not clause.any_of:
        return Sql("1" if clause.negate else "0")
    compiled = [_compile_predicate(resource_type, p) for p in clause.any_of]
    union = " UNION ALL ".join(c.text for c in compiled)
    params = tuple(p for c in compiled for p in c.params)
    return Sql(f"r.id {'NOT IN' if clause.negate else 'IN'} ({union})", params)


def _compile_correlated_clause(clause: Clause) -> Sql:
    """`[NOT] (EXISTS ... OR EXISTS ...)`, each probing the candidate's own index rows."""
    if not clause.any_of:
        return Sql("1" if clause.negate else "0")
    compiled = [_compile_correlated(p) for p in clause.any_of]
    text = " OR ".join(c.text for c in compiled)
    params = tuple(p for c in compiled for p in c.params)
    return Sql(f"{'NOT ' if clause.negate else ''}({text})", params)


def _compile_correlated(predicate: Predicate) -> Sql:
    """One predicate as a condition on the candidate row `r`."""
    if isinstance(predicate, IdMatch):
        if not predicate.ids:
            return Sql("0")
        marks = ", ".join("?" for _ in predicate.ids)
        return Sql(f"r.id IN ({marks})", tuple(predicate.ids))
    table, conditions = _table_and_conditions(predicate)
    texts = ["s.type = r.type", "s.id = r.id", "s.param = ?", *(c.text for c in conditions)]
    params = (predicate.param, *(p for c in conditions for p in c.params))
    return Sql(f"EXISTS (SELECT 1 FROM {table} s INDEXED BY {table}_owner "
               f"WHERE {' AND '.join(texts)})", params)


def _compile_predicate(resource_type: str, predicate: Predicate) -> Sql:
    """One predicate as a query of the (never NULL) ids of the resources it matches."""
    if isinstance(predicate, IdMatch):
        if not predicate.ids:
            return Sql("SELECT '' WHERE 0")
        return Sql(" UNION ALL ".join("SELECT ?" for _ in predicate.ids), tuple(predicate.ids))
    table, conditions = _table_and_conditions(predicate)
    texts = ["type = ?", "param = ?", *(c.text for c in conditions)]
    params = (resource_type, predicate.param, *(p for c in conditions for p in c.params))
    return Sql(f"SELECT id FROM {table} WHERE {' AND '.join(texts)}", params)


def _table_and_conditions(predicate: Predicate) -> tuple[str, list[Sql]]:
    """The index table a predicate reads and its value conditions."""
    if isinstance(predicate, TokenMatch):
        return "idx_token", _token_conditions(predicate)
    if isinstance(predicate, ReferenceMatch):
        return "idx_reference", _reference_conditions(predicate)
    if isinstance(predicate, DateMatch):
        return "idx_date", _date_conditions(predicate)
    if isinstance(predicate, StringMatch):
        return "idx_string", _string_conditions(predicate)
    raise TypeError(f"unsupported predicate: {predicate!r}")


def _token_conditions(match: TokenMatch) -> list[Sql]:
    """`system=None` is any system, `""` is no system; `code=None` is any code."""
    conditions: list[Sql] = []
    if match.code is not None:
        conditions.append(Sql("code = ?", (match.code,)))
    if match.system == "":
        conditions.append(Sql("system IS NULL"))
    elif match.system is not None:
        conditions.append(Sql("system = ?", (match.system,)))
    return conditions


def _reference_conditions(match: ReferenceMatch) -> list[Sql]:
    """By id (and type when given), or by absolute url; either one may identify the target."""
    alternatives: list[Sql] = []
    if match.target_id is not None:
        if match.target_type is not None:
            alternatives.append(Sql("(target_id = ? AND target_type = ?)",
                                    (match.target_id, match.target_type)))
        else:
            alternatives.append(Sql("target_id = ?", (match.target_id,)))
    elif match.target_type is not None:
        alternatives.append(Sql("target_type = ?", (match.target_type,)))
    if match.url is not None:
        alternatives.append(Sql("url = ?", (match.url,)))
    if not alternatives:
        return []
    if len(alternatives) == 1:
        return alternatives
    text = " OR ".join(a.text for a in alternatives)
    return [Sql(f"({text})", tuple(p for a in alternatives for p in a.params))]


def _date_conditions(match: DateMatch) -> list[Sql]:
    """Every bound that is set must hold on the entry's `[low, high)` range."""
    bounds = (("low >= ?", match.low_ge), ("low < ?", match.low_lt),
              ("high > ?", match.high_gt), ("high <= ?", match.high_le))
    return [Sql(text, (value,)) for text, value in bounds if value is not None]


def _string_conditions(match: StringMatch) -> list[Sql]:
    """`exact` on the raw value; prefix as an index range; `contains` with `instr`."""
    if match.mode == "exact":
        return [Sql("exact = ?", (match.value,))]
    if match.mode == "contains":
        return [Sql("instr(normalized, ?) > 0", (match.value,))] if match.value else []
    upper = prefix_upper_bound(match.value)
    if upper is None:
        return [Sql("normalized >= ?", (match.value,))] if match.value else []
    return [Sql("normalized >= ? AND normalized < ?", (match.value, upper))]


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (None if there is none).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so `[prefix, upper)`
    is exactly the strings with that prefix and the range can use the index (LIKE could not:
    it is case-insensitive, so SQLite will not use a BINARY index for it).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000  # surrogates cannot be encoded as UTF-8
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def compile_order(sort: tuple[SortKey, ...], *, ids_drive: bool = False) -> Sql:
    """The sort keys in order, then `id` so pages are stable; default is oldest first.

    `ids_drive` writes `+r.last_updated` (not a bare column) so SQLite will not use an index
    to produce that order and instead starts from the ids the clauses select.
    """
    updated = "+r.last_updated" if ids_drive else "r.last_updated"
    if not sort:
        return Sql(f"{updated}, r.id")
    terms: list[str] = []
    params: list[SqlParam] = []
    for key in sort:
        direction = "DESC" if key.descending else "ASC"
        if key.kind == "id":
            terms.append(f"r.id {direction}")
        elif key.kind == "lastUpdated":
            terms.append(f"{updated} {direction}")
        else:
            table, ascending, descending = _SORT_SOURCES[key.kind]
            aggregate = descending if key.descending else ascending
            terms.append(f"(SELECT {aggregate} FROM {table} s WHERE s.type = r.type "
                         f"AND s.id = r.id AND s.param = ?) {direction}")
            params.append(key.param)
    if not any(key.kind == "id" for key in sort):
        terms.append("r.id ASC")
    return Sql(", ".join(terms), tuple(params))
