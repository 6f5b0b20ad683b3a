// Strana's browser tracker: pageviews (SPAs too), custom events, opt-out; no cookies, no storage writes.
//
// One source, several builds: build.mjs sets the EXT_* constants below to true or false and esbuild drops
// the code of every extension that is off. The core (all false) is dist/strana.js; all on is strana.full.js.
// The body sent is Plausible's Events API (n, u, d, r, p, $, h, i; sd and e for "engagement") as text/plain,
// a CORS "simple" request, so no preflight.
/* global EXT_OUTBOUND, EXT_DOWNLOADS, EXT_404, EXT_ENGAGEMENT */
(function () {
  var w = window
  var d = document
  var l = location
  var nav = navigator
  var script = d.currentScript
  var attr = (name) => script.getAttribute('data-' + name)
  var on = (name) => attr(name) != null
  var api = attr('api') || new URL('/api/event', script.src).href
  var site = attr('site') || l.hostname
  var hash = on('hash')
  // Reasons that hold for the page's whole life, decided once; the opt-out flag is read on every event.
  var skip =
    (!on('allow-local') && (/^localhost$|^127\.|^\[::1\]$/.test(l.hostname) || l.protocol == 'file:')) ||
    (!on('allow-automation') && nav.webdriver) ||
    (on('respect-dnt') && (nav.doNotTrack == '1' || nav.globalPrivacyControl))
  var last

  // body: the event's own fields; callback(result) runs once the collector answered, or at once if ignored.
  function send(body, callback, beacon) {
    var optedOut
    try { optedOut = localStorage.strana_ignore == 'true' } catch (e) {}
    if (skip || optedOut) return callback?.()
    body.u = body.u || l.href
    body.d = site
    body.r = d.referrer
    if (hash) body.h = 1
    body = JSON.stringify(body)
    // A string body is sent as text/plain. sendBeacon and keepalive both outlive the page.
    if (EXT_ENGAGEMENT && beacon && nav.sendBeacon) return nav.sendBeacon(api, body)
    fetch(api, { method: 'POST', body, keepalive: true }).then(
      (r) => callback?.({ status: r.status }),
      (error) => callback?.({ error })
    )
  }

  // strana(name, {props, revenue, callback, interactive, url})
  function strana(name, options) {
    options = options || {}
    var props = options.props
    if (EXT_404 && name == '404') props = Object.assign({ path: l.pathname }, props)
    send({ n: name, u: options.url, p: props, $: options.revenue, i: options.interactive }, options.callback)
  }

  if (EXT_ENGAGEMENT) {
    // Engaged time counts while the page is visible and focused; scroll depth is the deepest point seen.
    // Both go out as one "engagement" event for the page when it is hidden or left, or on the next SPA pageview.
    var pageUrl, since, engaged, deepest, sentDeepest
    var depth = () => {
      var height = Math.max(d.body?.scrollHeight, d.documentElement.scrollHeight) // NaN (so 0) before <body>
      return Math.min(100, Math.round(((w.scrollY + w.innerHeight) / height) * 100)) || 0
    }
    var clock = (event) => {
      var now = Date.now()
      if (since) engaged += now - since
      since = event && event.type == 'blur' ? 0 : d.visibilityState == 'visible' && d.hasFocus() ? now : 0
    }
    var engage = () => {
      clock()
      if (pageUrl && (engaged >= 3000 || deepest > sentDeepest)) {
        send({ n: 'engagement', u: pageUrl, sd: deepest, e: engaged }, null, 1)
        sentDeepest = deepest
        engaged = 0
      }
    }
  }

  // A pageview for each new path (path + fragment with data-hash); re-renders of the same URL are not counted.
  function page() {
    var key = l.pathname + (hash ? l.hash : '')
    if (key == last) return
    last = key
    if (EXT_ENGAGEMENT) {
      engage()
      pageUrl = l.href
      engaged = sentDeepest = 0
      deepest = depth()
    }
    send({ n: 'pageview' })
  }

  function start() {
    var queue = (w.strana && w.strana.q) || []
    w.strana = strana
    page()
    var history = w.history
    ;['pushState', 'replaceState'].forEach((method) => {
      var original = history[method]
      history[method] = function () {
        original.apply(this, arguments)
        page()
      }
    })
    w.addEventListener('popstate', page)
    if (hash) w.addEventListener('hashchange', page)
    if (EXT_404 && on('404')) strana('404')
    if (EXT_OUTBOUND || EXT_DOWNLOADS) {
      var files = new RegExp(
        '\\.(' + (attr('download-extensions') || 'pdf,csv,txt,rtf,docx?,xlsx?,pptx?,zip,gz,7z,rar,dmg,exe,pkg,mp3,mp4,mov')
          .replace(/[\s,]+/g, '|') + ')$', 'i')
      var click = (event) => {
        var link = event.target.closest && event.target.closest('a[href]')
        if (!link || (event.type == 'auxclick' && event.button != 1)) return
        if (EXT_DOWNLOADS && files.test(link.pathname)) {
          send({ n: 'File Download', p: { url: link.origin + link.pathname } })
        } else if (EXT_OUTBOUND && /^http/.test(link.protocol) && link.host != l.host) {
          send({ n: 'Outbound Link: Click', p: { url: link.href } })
        }
      }
      d.addEventListener('click', click)
      d.addEventListener('auxclick', click)
    }
    if (EXT_ENGAGEMENT) {
      w.addEventListener('scroll', () => { deepest = Math.max(deepest, depth()) }, { passive: true })
      w.addEventListener('focus', clock)
      w.addEventListener('blur', clock)
      d.addEventListener('visibilitychange', () => (d.visibilityState == 'hidden' ? engage() : clock()))
    }
    queue.forEach((args) => strana(...args))
  }

  // A prerendered page counts when (and only if) the visitor actually opens it.
  d.prerendering ? d.addEventListener('prerenderingchange', start, { once: true }) : start()
})()
