"""The pages' charts as plain plotly.js figures (``{"data": [...], "layout": {...}}``), built from
the same rows as the tables beside them. Every number is an exact decimal string (plotly.js
reads numeric strings as numbers): a chart never goes through a float of money here, and its
hover text is the table's text. Drawn in the page by static/charts.js with the plotly.js the app
serves itself."""

from __future__ import annotations

from orchestration.lib.readers import format_money, format_quantity

#: what one day's figure of a meter is, by aggregation (marts.fct_usage_daily.quantity)
DAILY_FIGURE = {
    "sum": "daily total",
    "count": "daily count",
    "max": "daily peak",
    "unique_count": "distinct values that day",
    "latest": "the day's last value",
    "time_weighted_sum": "the day's net change of level",
    "running_total": "the day's net change of level",
}
#: plotly.js options of every chart: no logo, no link to plotly's cloud, resizes with the page
CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False}


def daily_figure(aggregation: str | None) -> str:
    return DAILY_FIGURE.get(aggregation or "", "the day's figure")


def item_label(product_item_id: str | None, item_name: str | None = None) -> str:
    if product_item_id is None:
        return "unbilled (no product item)"
    return f"{item_name} ({product_item_id})" if item_name else product_item_id


def _layout(title: str, y_title: str, **extra) -> dict:
    return {"title": {"text": title}, "height": 420, "margin": {"l": 70, "r": 20, "t": 50,
                                                                 "b": 60},
            "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
            "legend": {"orientation": "h", "y": -0.2}, "hovermode": "x unified", **extra}


def usage_chart(rows: list[dict], item_names: dict, *, meter: dict) -> dict:
    """One line per product item: the meter's figure per UTC day (rows of queries.usage_daily)."""
    traces: dict = {}
    for row in rows:
        key = row["product_item_id"]
        trace = traces.setdefault(key, {
            "type": "scatter", "mode": "lines+markers",
            "name": item_label(key, item_names.get(key)), "x": [], "y": [],
            "hovertemplate": "%{x}: %{y}<extra>%{fullData.name}</extra>"})
        trace["x"].append(row["usage_date"].isoformat())
        trace["y"].append(format_quantity(row["quantity"]))
    unit = meter.get("unit") or ""
    title = f"{meter.get('meter_name') or meter['meter_id']}: {daily_figure(meter['aggregation'])}"
    return {"data": list(traces.values()),
            "layout": _layout(title, unit, xaxis={"type": "date", "title": {"text": "UTC day"}}),
            "config": CONFIG}


def revenue_charts(rows: list[dict]) -> list[dict]:
    """Per currency, one stacked bar per month, a segment per product item (rows of
    queries.revenue_by_item); months still estimated say so on the axis."""
    labels: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["currency"], row["revenue_month"].strftime("%Y-%m"))
        if row["is_estimate"] or key not in labels:
            labels[key] = f"{key[1]} (estimate)" if row["is_estimate"] else key[1]
    traces: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: (r["currency"], r["revenue_month"])):
        item = row["product_item_id"]
        trace = traces.setdefault(row["currency"], {}).setdefault(item, {
            "type": "bar", "x": [], "y": [],
            "name": ("minimum-commitment top-up" if item is None
                     else item_label(item, row["item_name"])),
            "hovertemplate": "%{x}: %{y}<extra>%{fullData.name}</extra>"})
        trace["x"].append(labels[(row["currency"], row["revenue_month"].strftime("%Y-%m"))])
        trace["y"].append(format_money(row["amount"], row["minor_unit"]))
    figures = []
    for currency, by_item in traces.items():
        months = [labels[key] for key in sorted(labels) if key[0] == currency]
        figures.append({"currency": currency, "figure": {
            "data": list(by_item.values()),
            "layout": _layout(f"Revenue by product item, {currency}", currency,
                              barmode="stack",
                              xaxis={"type": "category", "title": {"text": "month"},
                                     "categoryorder": "array", "categoryarray": months}),
            "config": CONFIG}})
    return figures
