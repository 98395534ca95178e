// Live updates for the dashboard. The server sends `change` (with its
// watermark) whenever any incident changes; this fetches the same page
// again and swaps in its <main>, keeping the scroll position and whatever
// is being typed. Without JavaScript every page is complete as served.
(function () {
  'use strict';
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var seen = Number(document.body.getAttribute('data-watermark') || 0);
  var busy = false, again = false;

  function fields(root) {
    var out = {};
    root.querySelectorAll('textarea[id], input[type=text][id], input[type=search][id]').forEach(function (f) {
      out[f.id] = f.value;
    });
    return out;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok || r.redirected) throw new Error('not refreshed: ' + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var next = doc.querySelector('main'), cur = document.querySelector('main');
        if (!next || !cur) return;
        var typed = fields(cur);
        var focused = document.activeElement && cur.contains(document.activeElement) ? document.activeElement.id : null;
        var x = window.scrollX, y = window.scrollY;
        cur.innerHTML = next.innerHTML;
        Object.keys(typed).forEach(function (id) {
          var f = document.getElementById(id);
          if (f && typed[id]) f.value = typed[id];
        });
        if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
        window.scrollTo(x, y);
        seen = Math.max(seen, Number(doc.body.getAttribute('data-watermark') || 0));
      })
      .catch(function () { /* keep the page as it is; the next change retries */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var events = new EventSource('/events');
  events.addEventListener('change', function (e) {
    if (Number(e.data) > seen) refresh();
  });
})();
