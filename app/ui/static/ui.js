// IMAP API web UI: small progressive enhancements; every page works without this file.
(function () {
  'use strict';

  // Forms that change something ask first (the no-JS path has its own confirmation page).
  document.addEventListener('submit', function (ev) {
    var msg = ev.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // Times are rendered in UTC by the server; show them in the browser's time zone.
  document.querySelectorAll('time[datetime]').forEach(function (el) {
    var d = new Date(el.getAttribute('datetime'));
    if (!isNaN(d)) { el.title = el.textContent; el.textContent = d.toLocaleString(); }
  });

  // The overview refreshes its counters from /v1/stats.
  var stats = document.querySelector('[data-stats-url]');
  if (stats) {
    var url = stats.getAttribute('data-stats-url');
    var refresh = function () {
      fetch(url, { credentials: 'same-origin' }).then(function (res) {
        return res.ok ? res.json() : null;
      }).then(function (data) {
        if (!data) return;
        document.querySelectorAll('[data-stat]').forEach(function (el) {
          var path = el.getAttribute('data-stat').split('|');
          var value = data[path[0]];
          if (path[1] !== undefined) value = value ? value[path[1]] : undefined;
          el.textContent = String(value || 0);
        });
      }).catch(function () { /* offline: keep the last numbers */ });
    };
    setInterval(refresh, 10000);
  }
})();
