"""The web dashboard: templates, static assets, the time series it draws, and its helpers.

Served by `conveyor.http.dashboard` at `/`; everything it shows is escaped (Jinja2
autoescape on the server, `textContent` in the browser), since message bodies and queue
tags are user input. Chart.js is vendored in `static/` with its licence: no CDN.
"""
