"""The enhancer chains: one ordered list per side of the bus, one comment per step.

Edge steps run in the process that took the request, because they need the
visitor's IP and user agent; `scrub_ip` ends the edge chain so nothing past
it ever sees either. Stateful steps run in the consumer (the worker), which
sees every event of a visitor because the bus is keyed by site + visitor.
"""

from __future__ import annotations

from collector.enhancers.drop_bots import DropBots
from collector.enhancers.drop_dnt import DropDnt
from collector.enhancers.drop_excluded_ip import DropExcludedIp
from collector.enhancers.drop_excluded_path import DropExcludedPath
from collector.enhancers.drop_foreign_host import DropForeignHost
from collector.enhancers.put_campaign import PutCampaign
from collector.enhancers.put_geolocation import PutGeolocation
from collector.enhancers.put_referrer import PutReferrer
from collector.enhancers.put_session import PutSession
from collector.enhancers.put_url import put_url
from collector.enhancers.put_user_agent import PutUserAgent
from collector.enhancers.put_visitor_id import PutVisitorId
from collector.enhancers.scrub_ip import scrub_ip
from collector.pipeline import Chain


def edge_chain(settings, salts, sites=None) -> Chain:
    """`sites`: the in-memory site registry (collector/site_registry.py); None: the file's sites only."""
    if sites is None:
        from collector.site_registry import SiteRegistry

        sites = SiteRegistry(settings)
        sites.reload()
    return Chain([
        # hostname + pathname from the page URL; query parameters set aside for put_campaign
        ("put_url", put_url),
        # the page's host is not one of the site's `hostnames` (needs put_url's hostname)
        ("drop_foreign_host", DropForeignHost(sites)),
        # the page matches one of the site's `excluded_paths` globs
        ("drop_excluded_path", DropExcludedPath(sites)),
        # the visitor's address is in the site's `excluded_ips` (needs the IP: before scrub_ip)
        ("drop_excluded_ip", DropExcludedIp(sites)),
        # DNT / Sec-GPC under the `drop` policy (the site's own policy, else [privacy] dnt_policy)
        ("drop_dnt", DropDnt(settings.privacy.dnt_policy, sites)),
        # crawlers, monitors, scripted clients, headless browsers, junk UAs (not server-side batch events)
        ("drop_bots", DropBots()),
        # browser, OS (major versions) and device type from the UA
        ("put_user_agent", PutUserAgent()),
        # utm_* and click ids; every other query parameter dropped unless allow-listed
        ("put_campaign", PutCampaign(settings.ingest.query_allow, sites)),
        # referrer without query, source and channel (after put_campaign: utm_source wins); referrer spam dropped
        ("put_referrer", PutReferrer()),
        # country, region, city from the IP (needs the IP: before scrub_ip)
        ("put_geolocation", PutGeolocation(settings.geoip.database)),
        # keyed hash of (daily salt, site, IP, UA); none under DNT `anonymous`
        ("put_visitor_id", PutVisitorId(salts, settings.privacy.dnt_policy, sites=sites)),
        # last: forget the IP, the UA and the raw URLs
        ("scrub_ip", scrub_ip),
    ])


def consumer_chain(settings) -> Chain:
    return Chain([
        # 30-minute sessions per visitor, judged by event time
        ("put_session", PutSession()),
    ])
