"""`paxosctl ui`: a live page of a running cluster, served on 127.0.0.1.

- `gate`: who may ask (the token, the Host header, the Origin of an action);
- `watch`: what the page shows, polled from the agents over the transport
  (and from the supervisor where one runs here), as events for the page;
- `actions`: what the page may do when started with --allow-actions (kill
  an agent, cut one off and heal, slow the cluster down): the control
  requests `paxosctl kill` and `paxosctl chaos` send;
- `server`: the HTTP server (standard library, a thread per request) that
  serves `static/` and streams the events (server-sent events).

The page (`static/index.html`, `app.js`, `style.css`) is plain HTML, JS
and CSS shipped as package data: no build step, nothing fetched from
elsewhere.
"""
