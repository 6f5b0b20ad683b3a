"""Sites, people and keys: who may see which site's stats, and which keys may use which API.

`tokens` signs cookies and makes/hashes secrets, `passwords` hashes with
argon2, `store` keeps users, roles, keys and links in DuckDB, `directory` is
their in-memory copy (no DB read per request), `access` decides what a
principal may do, `guard` is the middleware that applies it to every
request (plus CSRF and security headers), `pages` are the login/setup/share
pages and `api` the JSON routes the dashboard's settings use.
"""
