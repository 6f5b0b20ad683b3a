"""The stats query layer, shaped like Plausible's Stats API v2: parse → plan → SQL → result.

`parse.py` turns the JSON body into a `Query` (or a `QueryError` naming the bad
field), `plan.py` decides which tables answer which metrics, `sql.py` writes the
parameterised DuckDB SQL, and `run.py` executes it and shapes the response.
Dimension and metric names only ever reach SQL through the whitelists in
`dimensions.py` and `metrics.py`; every user value is a bound parameter.
"""
