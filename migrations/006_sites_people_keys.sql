-- Sites, people and keys (issue 11). Small tables, read into memory at start
-- and after each change; never queried per hit.

-- One row per site. `config` holds the per-site settings as JSON (timezone,
-- hostnames, excluded paths/IPs, DNT policy, retention, query allow-list,
-- goals, require_key); `origin` is 'operator' (CLI/API) or 'auto' (made by
-- the first hit in open mode; auto sites do not close open mode).
CREATE TABLE IF NOT EXISTS sites (
    domain VARCHAR PRIMARY KEY,
    config JSON NOT NULL,
    origin VARCHAR NOT NULL DEFAULT 'operator',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- People who log into the dashboard. `session_epoch` is bumped by "log out
-- everywhere" and by a password change: sessions carry the epoch they were
-- made under and are refused once it moved on.
CREATE TABLE IF NOT EXISTS users (
    id VARCHAR PRIMARY KEY,
    email VARCHAR NOT NULL UNIQUE,
    password_hash VARCHAR NOT NULL,
    totp_secret VARCHAR,
    is_owner BOOLEAN NOT NULL DEFAULT false,
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Roles per site: owner, admin (settings), viewer (read). `site` '*' means every site.
CREATE TABLE IF NOT EXISTS memberships (
    user_id VARCHAR NOT NULL,
    site VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    PRIMARY KEY (user_id, site)
);

-- API keys: only the sha256 of the token is kept. Scope `read` (stats) or `write` (batch events).
CREATE TABLE IF NOT EXISTS api_keys (
    id VARCHAR PRIMARY KEY,
    token_hash VARCHAR NOT NULL UNIQUE,
    site VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    name VARCHAR NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

-- Read-only dashboard links (and their embeddable variant), by the sha256 of their token,
-- optionally behind a password (argon2 hash).
CREATE TABLE IF NOT EXISTS shared_links (
    id VARCHAR PRIMARY KEY,
    token_hash VARCHAR NOT NULL UNIQUE,
    site VARCHAR NOT NULL,
    name VARCHAR NOT NULL DEFAULT '',
    password_hash VARCHAR,
    embed BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

-- Server secrets (the cookie-signing key) and the one-time setup token's hash.
CREATE TABLE IF NOT EXISTS auth_state (
    name VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
