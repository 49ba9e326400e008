// IMAP API web UI: talks only to the public REST API.
(function () {
  'use strict';
  let stateFilter = '';
  const LABELS = { authenticationError: 'Authentication failed', connectError: 'Connection failed' };

  function toast(text, isError) {
    const el = document.getElementById('toast');
    el.textContent = text; el.className = isError ? 'error' : ''; el.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  async function api(method, url, body) {
    const res = await fetch(url, {
      method, headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const fields = (data.fields || []).map(f => f.key + ': ' + f.message).join('; ');
      throw new Error((data.message || res.statusText) + (fields ? ' (' + fields + ')' : ''));
    }
    return data;
  }

  function cell(row, text, cls) {
    const td = row.insertCell(); td.textContent = text == null ? '' : String(text);
    if (cls) td.className = cls; return td;
  }

  async function loadAccounts() {
    const q = '/v1/accounts?page=0&pageSize=1000' + (stateFilter ? '&state=' + encodeURIComponent(stateFilter) : '');
    let data;
    try { data = await api('GET', q); } catch (err) { toast('Could not load accounts: ' + err.message, true); return; }
    const body = document.querySelector('#accounts tbody');
    body.textContent = '';
    document.getElementById('accounts-empty').hidden = data.accounts.length > 0;
    for (const acc of data.accounts) {
      const row = body.insertRow();
      cell(row, acc.account); cell(row, acc.name);
      const label = LABELS[acc.state] || (acc.state.charAt(0).toUpperCase() + acc.state.slice(1));
      cell(row, label, 'state-' + acc.state);
      const err = acc.lastError && (acc.lastError.response || acc.lastError.serverResponseCode);
      cell(row, err || (acc.syncTime ? 'Last change ' + new Date(acc.syncTime).toLocaleString() : ''));
      const actions = row.insertCell();
      const rc = document.createElement('button'); rc.textContent = 'Reconnect';
      rc.onclick = () => api('PUT', '/v1/account/' + encodeURIComponent(acc.account) + '/reconnect', { reconnect: true })
        .then(() => toast('Reconnect requested')).catch(e => toast(e.message, true));
      const del = document.createElement('button'); del.textContent = 'Delete';
      del.onclick = () => {
        if (!confirm('Delete account ' + acc.account + '?')) return;
        api('DELETE', '/v1/account/' + encodeURIComponent(acc.account))
          .then(() => { toast('Deleted'); loadAccounts(); }).catch(e => toast(e.message, true));
      };
      actions.append(rc, ' ', del);
    }
  }

  function serverSettings(form, prefix) {
    const v = name => form.elements[prefix + '.' + name];
    return {
      host: v('host').value.trim(), port: parseInt(v('port').value, 10), secure: v('secure').checked,
      tls: { rejectUnauthorized: !v('selfSigned').checked },
      auth: { user: v('user').value, pass: v('pass').value },
    };
  }

  document.getElementById('add-account').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const payload = { account: form.elements.account.value.trim(), name: form.elements.name.value,
                      imap: serverSettings(form, 'imap') };
    if (form.elements['smtp.enabled'].checked) payload.smtp = serverSettings(form, 'smtp');
    try {
      const res = await api('POST', '/v1/account', payload);
      toast('Account ' + res.account + (res.state === 'new' ? ' created' : ' updated'));
      form.reset(); loadAccounts();
    } catch (err) { toast(err.message, true); }
  });

  for (const btn of document.querySelectorAll('#state-filter button')) {
    btn.addEventListener('click', () => {
      stateFilter = btn.dataset.state;
      document.querySelectorAll('#state-filter button').forEach(b => b.classList.toggle('active', b === btn));
      loadAccounts();
    });
  }
  loadAccounts();
  setInterval(loadAccounts, 5000);
})();
