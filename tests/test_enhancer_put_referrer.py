"""put_referrer: referrer, source and channel for every channel, internal referrers, campaigns, spam and junk."""

from __future__ import annotations

import pytest

from collector.enhancers.put_referrer import PutReferrer
from collector.events import Hit


@pytest.fixture(scope="module")
def step() -> PutReferrer:
    return PutReferrer(cache_size=64)


def run(step, referrer="", *, hostname="example.com", site="example.com", utm_source=None, utm_medium=None,
        utm_campaign=None, click_id=None) -> Hit:
    hit = Hit(raw_referrer=referrer, hostname=hostname, site=site, utm_source=utm_source, utm_medium=utm_medium,
              utm_campaign=utm_campaign, click_id=click_id)
    assert step(hit) is None
    return hit


# (referrer, campaign fields) → (source, channel)
CASES = [
    # ---- Direct ----
    ("", {}, (None, "Direct")),
    # ---- Organic Search ----
    ("https://www.google.com/", {}, ("Google", "Organic Search")),
    ("https://www.google.co.uk/search?q=strana", {}, ("Google", "Organic Search")),
    ("https://google.com.br/", {}, ("Google", "Organic Search")),
    ("https://news.google.com/articles/x", {}, ("Google", "Organic Search")),
    ("android-app://com.google.android.googlequicksearchbox/", {}, ("Google", "Organic Search")),
    ("https://www.bing.com/search?q=x", {}, ("Bing", "Organic Search")),
    ("https://duckduckgo.com/", {}, ("DuckDuckGo", "Organic Search")),
    ("https://search.yahoo.com/search?p=x", {}, ("Yahoo!", "Organic Search")),
    ("https://yandex.ru/search/?text=x", {}, ("Yandex", "Organic Search")),
    ("https://www.baidu.com/link?url=x", {}, ("Baidu", "Organic Search")),
    ("https://www.ecosia.org/search?q=x", {}, ("Ecosia", "Organic Search")),
    ("https://search.brave.com/search?q=x", {}, ("Brave", "Organic Search")),
    ("https://example.org/", {"utm_medium": "organic"}, ("example.org", "Organic Search")),
    # ---- Paid Search: utm_medium or a click id ----
    ("https://www.google.com/", {"utm_source": "google", "utm_medium": "cpc"}, ("Google", "Paid Search")),
    ("", {"utm_source": "bing", "utm_medium": "ppc"}, ("Bing", "Paid Search")),
    ("https://www.google.com/", {"click_id": "gclid"}, ("Google", "Paid Search")),
    ("", {"click_id": "gclid"}, (None, "Paid Search")),
    ("https://www.bing.com/", {"click_id": "msclkid"}, ("Bing", "Paid Search")),
    # ---- Organic Social ----
    ("https://www.facebook.com/", {}, ("Facebook", "Organic Social")),
    ("https://l.facebook.com/l.php?u=x", {}, ("Facebook", "Organic Social")),
    ("https://m.facebook.com/", {"click_id": "fbclid"}, ("Facebook", "Organic Social")),
    ("https://l.instagram.com/", {}, ("Instagram", "Organic Social")),
    ("https://t.co/abc123", {}, ("Twitter", "Organic Social")),
    ("https://x.com/someone/status/1", {}, ("Twitter", "Organic Social")),
    ("https://www.linkedin.com/feed/", {}, ("LinkedIn", "Organic Social")),
    ("https://old.reddit.com/r/selfhosted/", {}, ("Reddit", "Organic Social")),
    ("https://news.ycombinator.com/item?id=1", {}, ("Hacker News", "Organic Social")),
    ("https://www.pinterest.de/pin/1/", {}, ("Pinterest", "Organic Social")),
    ("https://www.tiktok.com/@x", {}, ("TikTok", "Organic Social")),
    ("android-app://com.slack/", {}, ("Slack", "Organic Social")),
    ("", {"utm_source": "hn"}, ("Hacker News", "Organic Social")),
    ("", {"utm_source": "newsletter-partner", "utm_medium": "social"}, ("newsletter-partner", "Organic Social")),
    # ---- Paid Social ----
    ("https://www.facebook.com/", {"utm_source": "facebook", "utm_medium": "paid_social"}, ("Facebook", "Paid Social")),
    ("", {"utm_source": "ig", "utm_medium": "cpc"}, ("Instagram", "Paid Social")),
    ("https://www.tiktok.com/", {"click_id": "ttclid"}, ("TikTok", "Paid Social")),
    ("https://www.linkedin.com/", {"click_id": "li_fat_id"}, ("LinkedIn", "Paid Social")),
    # ---- Organic Video ----
    ("https://www.youtube.com/watch?v=x", {}, ("YouTube", "Organic Video")),
    ("https://youtu.be/x", {}, ("YouTube", "Organic Video")),
    ("https://vimeo.com/1", {}, ("Vimeo", "Organic Video")),
    ("", {"utm_source": "partner", "utm_medium": "video"}, ("partner", "Organic Video")),
    # ---- AI Assistants ----
    ("https://chatgpt.com/", {}, ("ChatGPT", "AI Assistants")),
    ("", {"utm_source": "chatgpt.com"}, ("ChatGPT", "AI Assistants")),
    ("https://www.perplexity.ai/search/x", {}, ("Perplexity", "AI Assistants")),
    ("https://claude.ai/chat/x", {}, ("Claude", "AI Assistants")),
    ("https://gemini.google.com/app", {}, ("Gemini", "AI Assistants")),
    ("https://copilot.microsoft.com/", {}, ("Copilot", "AI Assistants")),
    # ---- Email ----
    ("https://mail.google.com/mail/u/0/", {}, ("Gmail", "Email")),
    ("android-app://com.google.android.gm", {}, ("Gmail", "Email")),
    ("https://outlook.live.com/mail/0/", {}, ("Outlook", "Email")),
    ("https://outlook.office.com/", {}, ("Outlook", "Email")),
    ("", {"utm_source": "newsletter", "utm_medium": "email"}, ("newsletter", "Email")),
    ("", {"utm_source": "Weekly Newsletter"}, ("Weekly Newsletter", "Email")),
    ("", {"click_id": "mc_cid"}, (None, "Email")),
    # ---- Affiliates ----
    ("https://deals.example.net/", {"utm_source": "deals", "utm_medium": "affiliate"}, ("deals", "Affiliates")),
    ("", {"click_id": "irclickid"}, (None, "Affiliates")),
    # ---- Display ----
    ("", {"utm_source": "dv360", "utm_medium": "display"}, ("dv360", "Display")),
    ("", {"utm_source": "network", "utm_medium": "banner"}, ("network", "Display")),
    ("", {"click_id": "dclid"}, (None, "Display")),
    # ---- Paid Other ----
    ("", {"utm_source": "podcast-x", "utm_medium": "paid"}, ("podcast-x", "Paid Other")),
    ("https://www.youtube.com/", {"utm_source": "youtube", "utm_medium": "cpv"}, ("YouTube", "Paid Other")),
    # ---- Cross-network ----
    ("", {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "Cross-network PMax"},
     ("Google", "Cross-network")),
    # ---- Referral ----
    ("https://blog.example.org/post?id=1#top", {}, ("blog.example.org", "Referral")),
    ("https://github.com/strana/strana", {}, ("GitHub", "Referral")),
    ("https://en.wikipedia.org/wiki/Web_analytics", {}, ("Wikipedia", "Referral")),
    ("android-app://com.example.reader", {}, ("com.example.reader", "Referral")),
    ("", {"utm_source": "partner", "utm_medium": "referral"}, ("partner", "Referral")),
    ("https://sub.example.com/", {}, ("sub.example.com", "Referral")),
    # ---- utm_source / ref overrides the referrer ----
    ("https://www.google.com/", {"utm_source": "github"}, ("GitHub", "Referral")),
    ("https://blog.example.org/", {"utm_source": "Spring Launch"}, ("Spring Launch", "Referral")),
    # ---- Other: a campaign with nothing to classify it ----
    ("", {"utm_source": "qr-code-poster"}, ("qr-code-poster", "Other")),
    ("", {"utm_campaign": "spring"}, (None, "Other")),
]


@pytest.mark.parametrize(("referrer", "campaign", "expected"), CASES,
                         ids=[f"{r[:40]}|{','.join(f'{k}={v}' for k, v in c.items())}" for r, c, _ in CASES])
def test_source_and_channel(step, referrer, campaign, expected):
    hit = run(step, referrer, **campaign)
    assert (hit.source, hit.channel) == expected


@pytest.mark.parametrize(("referrer", "stored", "host"), [
    # ---- query string and fragment are cut, host lower-cased, www. gone from referrer_host ----
    ("https://www.Google.com/search?q=private+thing#x", "https://www.google.com/search", "google.com"),
    ("https://blog.example.org", "https://blog.example.org/", "blog.example.org"),
    ("https://user:secret@blog.example.org:8443/a/b?c=d", "https://blog.example.org:8443/a/b", "blog.example.org"),
    ("http://news.ycombinator.com/item?id=42", "http://news.ycombinator.com/item", "news.ycombinator.com"),
    ("android-app://com.google.android.gm", "android-app://com.google.android.gm", "com.google.android.gm"),
])
def test_referrer_is_stored_without_query(step, referrer, stored, host):
    hit = run(step, referrer)
    assert (hit.referrer, hit.referrer_host) == (stored, host)


@pytest.mark.parametrize(("referrer", "hostname", "site"), [
    # ---- internal: the page's own host or the site's domain, www. or not ----
    ("https://example.com/pricing", "example.com", "example.com"),
    ("https://www.example.com/", "example.com", "example.com"),
    ("https://WWW.EXAMPLE.COM/a?b=c", "example.com", "example.com"),
    ("https://docs.example.com/start", "docs.example.com", "example.com"),
    ("https://example.com/", "shop.example.com", "example.com"),
])
def test_internal_referrers_are_not_sources(step, referrer, hostname, site):
    hit = run(step, referrer, hostname=hostname, site=site)
    assert (hit.referrer, hit.referrer_host, hit.source, hit.channel) == (None, None, None, "Direct")


def test_internal_referrer_keeps_the_campaign(step):
    hit = run(step, "https://example.com/", utm_source="newsletter", utm_medium="email")
    assert (hit.referrer, hit.source, hit.channel) == (None, "newsletter", "Email")


@pytest.mark.parametrize("referrer", [
    # ---- garbage is no referrer, never an error ----
    "not a url",
    "example.org",
    "/relative/path",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "chrome-extension://abcdef/page.html",
    "about:blank",
    "http://",
    "https:///nohost",
    "https://exa mple.org/",
    "https://[::1/",
    "https://example.org:99999/",
    "https://<script>/",
    "http://intranet/",
    "\x00\x01\x02",
    "https://" + "a" * 5000 + ".com/",
    "https://example.org/" + "x" * 10000,
])
def test_junk_referrers_count_as_direct(step, referrer):
    hit = run(step, referrer)
    assert (hit.referrer, hit.referrer_host, hit.source, hit.channel) == (None, None, None, "Direct")


def test_long_referrer_is_cut(step):
    hit = run(step, "https://blog.example.org/" + "p" * 3000)
    assert hit.referrer.startswith("https://blog.example.org/pp") and len(hit.referrer) == 1000


@pytest.mark.parametrize("referrer", [
    # ---- referrer spam: the domain and its subdomains ----
    "http://semalt.com/",
    "https://www.semalt.com/crawler",
    "http://ilovevitaly.ru/",
    "https://best-seo-offer.com/?x=1",
    "http://some.sub.buttons-for-website.com/",
])
def test_referrer_spam_is_dropped(step, referrer):
    hit = Hit(raw_referrer=referrer, hostname="example.com", site="example.com")
    assert step(hit) == "spam_referrer"


def test_a_spam_lookalike_is_not_spam(step):
    hit = run(step, "https://notsemalt.com/")
    assert (hit.source, hit.channel) == ("notsemalt.com", "Referral")
