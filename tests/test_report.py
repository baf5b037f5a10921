"""The HTML report: one self-contained file, opened in a real headless Chromium, which must draw
every chart and raise no JavaScript error.

Chromium comes from Debian's ``chromium`` package (``scripts/test.sh`` installs it when it can);
the browser tests are skipped only when no Chromium binary is found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import (
    Backtest,
    BacktestConfig,
    BacktestResult,
    PolarsDataFeed,
    Strategy,
    TimestampBatch,
    TopKStrategy,
)
from ml4t.backtest.results.report import MAX_POINTS, build_report_html
from ml4t.backtest.synthetic import make_bars

pytest.importorskip("plotly")

# The charts of every report with data; a benchmark adds the rolling beta, a prediction column
# the signal views.
BASE_CHART_IDS = (
    "chart-equity",
    "chart-drawdown",
    "chart-yearly",
    "chart-monthly",
    "chart-rolling-sharpe",
    "chart-rolling-volatility",
    "chart-distribution",
    "chart-trade-pnl",
    "chart-long-short",
    "chart-pnl-by-asset",
    "chart-exposure",
    "chart-holdings",
    "chart-positions",
    "chart-turnover",
    "chart-cost-sensitivity",
)
CHART_IDS = (*BASE_CHART_IDS, "chart-rolling-beta", "chart-ic", "chart-quantiles")

# Injected at the top of <head> in the copy the browser opens: every uncaught error or rejected
# promise becomes an element in the DOM, which --dump-dom then shows.
ERROR_PROBE = """<script>
(function () {
  function note(text) {
    var add = function () {
      var el = document.createElement("div");
      el.className = "js-error-probe";
      el.textContent = String(text);
      document.body.appendChild(el);
    };
    if (document.body) { add(); } else { document.addEventListener("DOMContentLoaded", add); }
  }
  window.addEventListener("error", function (e) { note("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { note("rejection: " + e.reason); });
  var original = console.error;
  console.error = function () {
    note("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"""


PROBE_ELEMENT = '<div class="js-error-probe"'

# After the charts drew: every card, headline figure and metrics cell whose text is wider than
# its box (scrollWidth > clientWidth) is reported as an element, as the probe above does.
OVERFLOW_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var boxes = document.querySelectorAll(
      ".card, .kpi, .kpi .value, .kpi .label, table.metrics td");
    for (var i = 0; i < boxes.length; i++) {
      var el = boxes[i];
      if (el.scrollWidth > el.clientWidth) {
        var note = document.createElement("div");
        note.className = "overflow-probe";
        note.textContent = el.className + ": " + el.textContent.slice(0, 60) + " (" +
          el.scrollWidth + " > " + el.clientWidth + ")";
        document.body.appendChild(note);
      }
    }
    var done = document.createElement("div");
    done.className = "overflow-probe-done";
    done.textContent = String(boxes.length);
    document.body.appendChild(done);
  }, 500);
});
</script>"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(page: Path, tmp_path: Path, inject: str = ERROR_PROBE) -> tuple[str, str]:
    """Opens a copy of ``page`` with ``inject`` at the top of <head> in headless Chromium, with
    the network pointed at a dead proxy (the page must work offline). Returns (DOM, stderr)."""
    browser = chromium_binary()
    if browser is None:
        pytest.skip(
            "no Chromium binary found (Debian package 'chromium'; scripts/test.sh installs it)"
        )
    text = page.read_text(encoding="utf-8")
    probe = tmp_path / f"probe-{page.name}"
    probe.write_text(text.replace("<head>", "<head>\n" + inject, 1), encoding="utf-8")
    env = dict(os.environ, HOME=str(tmp_path))  # a writable profile directory
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--proxy-server=127.0.0.1:9",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,2400",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout, completed.stderr


def console_errors(stderr: str) -> list[str]:
    """Chromium's own log lines about page JavaScript (uncaught errors, console errors)."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or ":ERROR:" in line)
    ]


class TopTwo(Strategy):
    def on_timestamp_batch(self, timestamp: Any, batch: TimestampBatch, context: Any) -> None:
        best = np.argsort(-batch["score"], kind="stable")[:2]
        context.rebalance({batch.assets[i]: 0.45 for i in best})
        context.record(top_score=float(batch["score"][best[0]]))


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    df = make_bars(n_assets=8, n_bars=400, seed=21)
    config = BacktestConfig(
        commission={"model": "percent", "rate": 0.0005},
        slippage={"model": "percent", "rate": 0.0002},
    )
    return Backtest(PolarsDataFeed(df), TopTwo(), config=config).run(progress=False)


@pytest.fixture(scope="module")
def bench_prices(result: BacktestResult) -> pl.DataFrame:
    n = result.equity.height
    rng = np.random.default_rng(0)
    prices = 100.0 * np.cumprod(1.0 + rng.normal(0.0003, 0.01, n))
    return pl.DataFrame({"timestamp": result.equity["timestamp"], "price": prices})


@pytest.fixture(scope="module")
def page(result: BacktestResult, bench_prices: pl.DataFrame, tmp_path_factory: Any) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    written = result.report(path, benchmark=bench_prices, title="Top-2 <demo>", prediction="score")
    assert written == path
    return path


def test_report_is_one_self_contained_file(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external script, stylesheet, image or font. (plotly.js itself
    # contains URL strings, used only by map traces; the markup outside scripts has none.)
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.DOTALL)
    assert not re.search(r"(https?:)?//", markup)
    assert "@import" not in markup and "url(" not in markup
    # plotly.js is embedded exactly once; one plot per chart.
    assert text.count("plotly.js v") == 1
    assert text.count("Plotly.newPlot(") == len(CHART_IDS)
    for chart in CHART_IDS:
        assert f'id="{chart}"' in text
    # The title is escaped, the tables and the benchmark rows are there.
    assert "Top-2 &lt;demo&gt;" in text
    assert "Top 10 by net PnL" in text and "Bottom 10 by net PnL" in text
    assert "Information ratio" in text and "Alpha" in text and "Up capture" in text
    assert "Calmar ratio" in text and "Longest drawdown" in text
    assert "Worst 5 drawdowns" in text and "valley" in text and "recovery" in text
    for label in ("Best day", "Worst month", "Best year", "VaR 95% (one day)", "Tail ratio"):
        assert label in text, label
    assert "Information coefficient of score" in text


@pytest.mark.filterwarnings("ignore:metric:RuntimeWarning")
def test_report_renders_in_chromium_without_errors(page: Path, tmp_path: Path) -> None:
    dom, stderr = render(page, tmp_path, inject=ERROR_PROBE + OVERFLOW_PROBE)
    assert PROBE_ELEMENT not in dom, re.findall(PROBE_ELEMENT + r">([^<]*)", dom)
    assert console_errors(stderr) == []
    for chart in CHART_IDS:
        match = re.search(rf'<div id="{chart}" class="([^"]*)"', dom)
        assert match is not None, chart
        assert "js-plotly-plot" in match.group(1), chart
    assert dom.count('class="main-svg"') >= 2 * len(CHART_IDS)
    # The plots hold drawn data: line traces, the heatmap and the histogram bars.
    assert dom.count('class="scatterlayer') >= 4
    assert "heatmaplayer" in dom or 'class="hm"' in dom
    assert 'class="point"' in dom  # histogram bars
    assert 'class="legendtext"' in dom and ">benchmark<" in dom
    # No text wider than its card, headline box or table cell.
    checked = re.search(r'<div class="overflow-probe-done">(\d+)</div>', dom)
    assert checked is not None and int(checked.group(1)) > 50
    assert re.findall(r'<div class="overflow-probe">([^<]*)', dom) == []


def test_overflow_probe_catches_a_wide_figure(page: Path, tmp_path: Path) -> None:
    """The check above would see an overflowing headline figure: force one."""
    wide = "<style>.kpi .value{font-size:90px !important}</style>"
    dom, _ = render(page, tmp_path, inject=OVERFLOW_PROBE + wide)
    assert re.findall(r'<div class="overflow-probe">kpi', dom) or re.findall(
        r'<div class="overflow-probe">value', dom
    )


def test_cdn_report_is_small_and_loads_plotly_from_the_cdn(
    result: BacktestResult, page: Path, tmp_path: Path
) -> None:
    """No network in the tests: the CDN page is checked as HTML."""
    from plotly.offline import get_plotlyjs_version

    path = result.report(tmp_path / "cdn.html", plotlyjs="cdn")
    text = path.read_text(encoding="utf-8")
    assert f"<script src='https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js'" in text
    assert "plotly.js v" not in text  # not embedded
    assert text.count("Plotly.newPlot(") == len(BASE_CHART_IDS)
    assert path.stat().st_size < 1_000_000 < 4_000_000 < page.stat().st_size


def test_directory_report_writes_plotly_beside_it(result: BacktestResult, tmp_path: Path) -> None:
    path = result.report(tmp_path / "out" / "dir.html", plotlyjs="directory")
    script = tmp_path / "out" / "plotly.min.js"
    assert script.is_file() and "plotly.js v" in script.read_text(encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert "<script src='plotly.min.js'" in text and "plotly.js v" not in text
    dom, stderr = render(path, tmp_path / "out")
    assert PROBE_ELEMENT not in dom
    assert console_errors(stderr) == []
    assert dom.count("js-plotly-plot") >= len(BASE_CHART_IDS)
    with pytest.raises(ValueError, match="plotlyjs"):
        result.report(tmp_path / "bad.html", plotlyjs="inline")  # type: ignore[arg-type]


def test_error_probe_catches_a_broken_page(page: Path, tmp_path: Path) -> None:
    """The check above would see a JavaScript error: inject one and expect it reported."""
    broken = ERROR_PROBE + "<script>window.addEventListener('load', function () {"
    broken += " undefinedFunction(); });</script>"
    dom, stderr = render(page, tmp_path, inject=broken)
    assert any("undefinedFunction" in line for line in console_errors(stderr))
    assert PROBE_ELEMENT in dom
    assert "undefinedFunction" in "".join(re.findall(PROBE_ELEMENT + r">([^<]*)", dom))


def test_report_edge_cases_render(tmp_path: Path) -> None:
    """No trades at all, and a time-zone-aware intraday run longer than MAX_POINTS."""

    class Idle(Strategy):
        def on_timestamp_batch(self, timestamp: Any, batch: Any, context: Any) -> None:
            pass

    idle_df = make_bars(n_assets=2, n_bars=30, seed=1)
    with pytest.warns(RuntimeWarning):
        idle = Backtest(PolarsDataFeed(idle_df), Idle()).run(progress=False)
        html_text = build_report_html(idle)
    assert "No closed trades" in html_text and "No trades." in html_text

    df = make_bars(n_assets=3, n_bars=MAX_POINTS + 1_500, seed=2, interval="1h").with_columns(
        pl.col("timestamp").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
    )
    hourly = Backtest(PolarsDataFeed(df), TopKStrategy("score", k=1)).run(progress=False)
    page = hourly.report(tmp_path / "hourly.html")
    text = page.read_text(encoding="utf-8")
    assert "America/New_York" in text
    dom, stderr = render(page, tmp_path)
    assert PROBE_ELEMENT not in dom
    assert console_errors(stderr) == []
    assert dom.count("js-plotly-plot") >= len(BASE_CHART_IDS)
    idle_page = tmp_path / "idle.html"
    idle_page.write_text(html_text, encoding="utf-8")
    dom, stderr = render(idle_page, tmp_path)
    assert PROBE_ELEMENT not in dom
    assert console_errors(stderr) == []


def test_loaded_result_reports(result: BacktestResult, tmp_path: Path) -> None:
    loaded = BacktestResult.load(result.save(tmp_path / "saved"))
    text = loaded.report(tmp_path / "again.html").read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot(") == len(BASE_CHART_IDS)
    assert "Information ratio" not in text  # no benchmark given this time
    # A loaded result has no data for the signal views: the page says so.
    text = loaded.report(tmp_path / "signal.html", prediction="score").read_text(encoding="utf-8")
    assert "A loaded result has no data" in text
