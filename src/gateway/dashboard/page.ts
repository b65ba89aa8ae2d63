import type { Panel } from './panels.ts';

/** The dashboard's HTML: a shell rendered on the server (navigation, the caller, the CSRF token, the panel list); the page script fills the views live. */

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `
:root{--bg:#fbfbfa;--fg:#1d1d1f;--mute:#6b6b70;--line:#e2e2e0;--acc:#1f5fbf;--ok:#1d7a3a;--bad:#b3261e;--warn:#a15c00}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:#fff;position:sticky;top:0}
header h1{font-size:1rem;margin:0}nav{display:flex;flex-wrap:wrap;gap:.25rem}
nav a{padding:.3rem .6rem;border-radius:6px;color:var(--fg);text-decoration:none}nav a[aria-current=page]{background:var(--acc);color:#fff}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
#conn{margin-left:auto;font-size:.8rem;color:var(--mute)}#conn.live{color:var(--ok)}#conn.down{color:var(--bad)}
main:focus{outline:none}main{padding:1rem;max-width:1200px;margin:0 auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;color:var(--mute);font-size:.8rem}.scroll{overflow-x:auto}
.state{font-weight:600}.s-succeeded,.s-approved,.s-sent{color:var(--ok)}.s-failed,.s-dead,.s-denied,.s-cancelled,.s-expired{color:var(--bad)}.s-waiting,.s-pending,.s-retry-scheduled,.s-escalated{color:var(--warn)}
ul.tree{list-style:none;padding-left:1.2rem;margin:.2rem 0}ul.tree li{margin:.2rem 0}.muted{color:var(--mute);font-size:.85rem}
.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.5rem 0}
button{font:inherit;padding:.3rem .7rem;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}button.primary{background:var(--acc);color:#fff;border-color:var(--acc)}
input,select{font:inherit;padding:.3rem .4rem;border:1px solid var(--line);border-radius:6px;max-width:100%}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.7rem;margin:.6rem 0}
.tl{position:relative;height:18px;background:#f0f0ee;border-radius:3px;margin:.2rem 0}.tl span{position:absolute;top:0;height:18px;border-radius:2px;min-width:2px}
.tl .turn{background:#1f5fbf}.tl .effect{background:#1d7a3a}.tl .wait{background:#e0a800}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.6rem}
.big{font-size:1.5rem;font-weight:600}.err{color:var(--bad)}
@media (max-width:600px){main{padding:.5rem}th,td{padding:.3rem}header{padding:.5rem}}
`;

export function dashboardPage(opts: { principal: string; scopes: readonly string[]; csrf: string; panels: readonly Panel[] }): string {
  const nav = opts.panels.map((p) => `<a href="#/${esc(p.id)}" data-panel="${esc(p.id)}">${esc(p.title)}</a>`).join('');
  const boot = JSON.stringify({ principal: opts.principal, scopes: opts.scopes, panels: opts.panels }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="${esc(opts.csrf)}"><title>Spine</title><style>${STYLE}</style></head>
<body><header><h1>Spine</h1><nav aria-label="views">${nav}</nav>
<span id="conn" role="status" aria-live="polite">connecting…</span>
<form method="post" action="/logout" id="logout"><input type="hidden" name="csrf" value="${esc(opts.csrf)}"><button type="submit" title="signed in as ${esc(opts.principal)}">Sign out ${esc(opts.principal)}</button></form></header>
<main id="view" tabindex="-1" aria-live="polite"></main>
<script id="boot" type="application/json">${boot}</script><script src="/dashboard.js" defer></script></body></html>`;
}

export function loginPage(opts: { error?: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Spine — sign in</title><style>${STYLE}</style></head>
<body><main><h1>Spine</h1><div class="card"><form method="post" action="/login">
<p><label for="token">API token</label><br><input id="token" name="token" type="password" autocomplete="off" size="48" required autofocus></p>
${opts.error ? `<p class="err" role="alert">${esc(opts.error)}</p>` : ''}
<p><button class="primary" type="submit">Sign in</button></p>
<p class="muted">Use a token from <code>spine tokens create --name you --scope viewer</code> (or operator/admin), or the one-time link <code>spine up</code> prints.</p>
</form></div></main></body></html>`;
}
