// Strana dashboard: keyboard shortcuts, the realtime counter, the graph's tooltip and menus.
// Loaded as a file (the page's Content-Security-Policy allows no inline script). Everything works without it.
(() => {
  "use strict";

  // Keyboard shortcuts for the period (links carry data-key) and x for the comparison.
  document.addEventListener("keydown", (ev) => {
    if (ev.metaKey || ev.ctrlKey || ev.altKey || ev.defaultPrevented) return;
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (ev.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach((d) => d.removeAttribute("open"));
      return;
    }
    let link = null;
    if (ev.key === "x") {
      link = document.querySelector("a[data-compare-off]:not([aria-current])") ||
        document.querySelector("a[data-compare-on]");
    } else if (/^[a-z0-9]$/.test(ev.key)) {
      link = document.querySelector(`a[data-key="${ev.key}"]`);
    }
    if (link) {
      ev.preventDefault();
      window.location.assign(link.href);
    }
  });

  // Country codes as names, in the reader's language (the server sends ISO codes).
  if (typeof Intl.DisplayNames === "function") {
    const names = new Intl.DisplayNames([navigator.language || "en", "en"], { type: "region" });
    document.querySelectorAll("[data-country]").forEach((el) => {
      try {
        const name = names.of(el.getAttribute("data-country"));
        if (name) el.textContent = name;
      } catch (_) { /* not a region code: keep it */ }
    });
  }

  // Close an open menu when clicking elsewhere; one menu open at a time.
  document.addEventListener("click", (ev) => {
    document.querySelectorAll("details.menu[open]").forEach((d) => {
      if (!d.contains(ev.target)) d.removeAttribute("open");
    });
  });

  // Realtime: visitors in the last 5 minutes, from GET /api/v1/realtime, refreshed while the tab is visible.
  const counter = document.querySelector("[data-realtime-url]");
  if (counter) {
    const url = counter.getAttribute("data-realtime-url");
    const label = document.querySelector(".realtime-label");
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const r = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
        if (!r.ok) return;
        const body = await r.json();
        counter.textContent = String(body.visitors);
        if (label) label.textContent = body.visitors === 1 ? "current visitor" : "current visitors";
      } catch (_) { /* offline for a moment: keep the last number */ }
    };
    setInterval(refresh, 3000);
    document.addEventListener("visibilitychange", refresh);
  }

  // The graph's tooltip: nearest bucket under the pointer, or the arrow keys when the plot has focus.
  const graph = document.querySelector(".graph[data-points]");
  if (graph) {
    const points = JSON.parse(graph.getAttribute("data-points") || "[]");
    const plot = graph.querySelector(".plot");
    const tip = graph.querySelector(".tip");
    const cursor = graph.querySelector(".cursor");
    const fmt = new Intl.NumberFormat();
    let index = -1;
    const show = (i) => {
      if (!points.length) return;
      index = Math.max(0, Math.min(points.length - 1, i));
      const p = points[index];
      const x = points.length === 1 ? 0.5 : index / (points.length - 1);
      tip.textContent = "";
      const head = document.createElement("strong");
      head.textContent = p.label;
      const now = document.createElement("span");
      now.textContent = fmt.format(p.value || 0);
      tip.append(head, now);
      if (p.compare !== null && p.compare !== undefined) {
        const before = document.createElement("span");
        before.className = "tip-cmp";
        before.textContent = `vs. ${fmt.format(p.compare)}`;
        tip.append(before);
      }
      tip.hidden = false;
      cursor.hidden = false;
      cursor.style.left = `${x * 100}%`;
      tip.style.left = `${x * 100}%`;
      tip.classList.toggle("flip", x > 0.7);
    };
    const hide = () => { tip.hidden = true; cursor.hidden = true; };
    plot.addEventListener("mousemove", (ev) => {
      const box = plot.getBoundingClientRect();
      show(Math.round(((ev.clientX - box.left) / box.width) * (points.length - 1)));
    });
    plot.addEventListener("mouseleave", hide);
    plot.addEventListener("blur", hide);
    plot.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
        ev.preventDefault();
        show(index < 0 ? (ev.key === "ArrowRight" ? 0 : points.length - 1) : index + (ev.key === "ArrowRight" ? 1 : -1));
      }
    });
  }
})();
