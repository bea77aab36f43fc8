"""`meterline serve`: the explorers for the operator and the customer portal (``portal.py``).

One small Starlette app (``app.py``, routes thin) that reads the readers' snapshot and never
writes the warehouse. ``source.py`` gives each request a short read-only cursor on the snapshot,
``queries.py`` holds every SQL the pages run, ``auth.py`` the operator's secret, ``charts.py``
the chart data (plain JSON, exact decimal strings), ``templates/`` the pages (Jinja2, autoescaped)
and ``static/`` the CSS and the script that draws the charts with the plotly.js served by the app
itself (no CDN: the charts draw without internet access)."""
