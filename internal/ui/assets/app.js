// Live updates for the dashboard: every few seconds, fetch the page's JSON twin (the URL in
// <main data-live>) and rebuild its tables from it. Only text is inserted (textContent,
// attributes of elements made here), never HTML from the data. Without this script the
// pages are complete; a reload shows the same.
'use strict';
(function () {
  var PERIOD = 3000;
  var main = document.getElementById('main');
  var url = main && main.getAttribute('data-live');
  if (!url) { return; }
  var status = document.getElementById('live-status');
  if (status) { status.hidden = false; }
  var stopped = false;

  // Links and form actions come from the server, but only ever to the dashboard itself.
  function local(href) {
    return typeof href === 'string' && href.indexOf('/ui/') === 0;
  }

  function cell(c) {
    var td = document.createElement('td');
    if (c.href && local(c.href)) {
      var a = document.createElement('a');
      a.setAttribute('href', c.href);
      a.textContent = c.t;
      td.appendChild(a);
    } else {
      td.textContent = c.t;
    }
    return td;
  }

  function endCell(tbody, row) {
    var td = document.createElement('td');
    var tpl = document.getElementById('end-' + tbody.getAttribute('data-table'));
    if (row.end && local(row.end) && tpl) {
      var frag = tpl.content.cloneNode(true);
      var form = frag.querySelector('form');
      form.setAttribute('action', row.end);
      if (row.end_what) { form.querySelector('button').setAttribute('title', 'End ' + row.end_what); }
      td.appendChild(frag);
    }
    return td;
  }

  function fill(tbody, rows) {
    // Rebuilding under a focused button would drop the focus (and a keyboard user's place).
    if (tbody.contains(document.activeElement)) { return; }
    var frag = document.createDocumentFragment();
    var action = tbody.hasAttribute('data-action');
    if (rows.length === 0) {
      var tr = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = parseInt(tbody.getAttribute('data-cols'), 10) || 1;
      td.className = 'empty';
      td.textContent = tbody.getAttribute('data-empty') || '';
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    rows.forEach(function (row) {
      var tr = document.createElement('tr');
      row.cells.forEach(function (c) { tr.appendChild(cell(c)); });
      if (action) { tr.appendChild(endCell(tbody, row)); }
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
  }

  function apply(data) {
    var tables = data.tables || {};
    Object.keys(tables).forEach(function (id) {
      var tbody = document.querySelector('tbody[data-table="' + CSS.escape(id) + '"]');
      if (tbody) { fill(tbody, tables[id]); }
    });
    var text = data.text || {};
    Object.keys(text).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.textContent = text[id]; }
    });
  }

  function tick() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (r.status === 401) { stopped = true; }
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(apply)
      .catch(function () { /* the next tick tries again */ })
      .then(function () { if (!stopped) { setTimeout(tick, PERIOD); } });
  }
  setTimeout(tick, PERIOD);
})();
