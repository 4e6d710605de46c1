"""Korean twins of the evaluation tables: docs/assets/evaluation/<name>.md -> <name>.ko.md.

The `evaluation_*.py` scripts write their table in English (`report()` in evaluation_support);
the Korean guide includes the `.ko.md` twin, which holds the same numbers with Korean headers,
labels and notes, and shows `<name>.ko.png`, the chart redrawn from that table with Korean
labels. `report()` writes both twins with each run; to refresh them without running a
measurement (after a wording change here):

    python bench/evaluation_ko.py

tests/docs/test_evaluation_ko.py checks that every twin is the translation of its table as it is
now, and `korean()` refuses a table with a header, label or note it has no Korean for, so a new
column cannot slip into the Korean page untranslated.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "assets" / "evaluation"

#: Column headers and row labels, English -> Korean. Case names such as `crud-naive` stay as they
#: are: the Korean page explains them under those names.
WORDS = {
    "case": "방식",
    "workers": "쓰기 워커",
    "writers": "쓰기 워커",
    "tickets issued": "발권 수",
    "final count": "최종 카운트",
    "beyond capacity": "정원 초과",
    "conflicts": "충돌",
    "reservations/s": "초당 예약",
    "p50 ms": "p50 ms",
    "p99 ms": "p99 ms",
    "events": "이벤트",
    "events/s": "초당 이벤트",
    "lag p50 ms": "지연 p50 ms",
    "lag p99 ms": "지연 p99 ms",
    "lag max ms": "지연 최대 ms",
    "never seen": "끝내 못 받음",
    "events in stream": "스트림의 이벤트",
    "full replay ms": "전체 재생 ms",
    "µs per event": "이벤트당 µs",
    "events after the last snapshot (every 100)": "마지막 스냅샷 뒤의 이벤트(100개마다 스냅샷)",
    "tail replay ms": "꼬리 재생 ms",
    "full ÷ tail": "전체 ÷ 꼬리",
    "payload": "페이로드",
    "JSON bytes": "JSON 바이트",
    "heap B/event": "힙 B/이벤트",
    "indexes B/event": "인덱스 B/이벤트",
    "total B/event": "합계 B/이벤트",
    "ilji.events MiB": "ilji.events MiB",
    "CRUD table MiB (1,000 rows)": "CRUD 테이블 MiB(1,000행)",
    "replay ms": "재생 ms",
    "vs baseline": "기준 대비",
    "small": "작음",
    "medium": "중간",
    "large": "큼",
    "schema 2, no upcaster": "스키마 2, 업캐스터 없음",
    "schema 2 through the upcaster": "스키마 2, 업캐스터 통과",
    "schema 1 through the upcaster": "스키마 1, 업캐스터 통과",
    "throughput": "처리량",
    "–": "–",
}

#: Table cells that carry numbers (bench/projections.py): a pattern and its Korean.
CELLS = [
    (r"catch-up, batches of ([\d,]+)", r"따라잡기, 배치 \1개"),
    (r"([\d,]+) events/s", r"초당 이벤트 \1"),
    (r"live, ([\d,]+) appends/s \(([\d,]+) measured\)", r"실시간, 초당 추가 \1건(\2건 측정)"),
    (r"([\d.,]+) \(max ([\d.,]+)\)", r"\1(최대 \2)"),
]

#: The lines around the table (machine description and notes): a pattern and its Korean.
LINES = [
    (r"- Machine: (.+), (\d+) cores, (.+) memory; (.+)", r"- 머신: \1, 코어 \2개, 메모리 \3, \4"),
    (
        r"- PostgreSQL (\S+) \(embedded, defaults: fsync and synchronous_commit on\)",
        r"- PostgreSQL \1(내장, 기본 설정: fsync와 synchronous_commit 켜짐)",
    ),
    (r"- PostgreSQL (\S+) \(existing server\)", r"- PostgreSQL \1(기존 서버)"),
    (r"- Python (\S+); load average before the run: (.+)", r"- Python \1, 실행 전 load average: \2"),
    (r"- Run at (.+) UTC with (`.+`)", r"- 실행: \1 UTC, \2"),
    # The header bench/projections.py writes (one `- key: value` line per machine_info() entry).
    (r"- CPU: (.+)", r"- CPU: \1"),
    (r"- Cores: (\d+)", r"- 코어: \1개"),
    (r"- Memory: (.+)", r"- 메모리: \1"),
    (r"- OS: (.+)", r"- 운영체제: \1"),
    (r"- Python: (\S+)", r"- Python: \1"),
    (r"- Load average: (.+)", r"- load average: \1"),
    (r"- Server: embedded wheel, throwaway", r"- 서버: 내장(휠), 쓰고 버리는 서버"),
    (r"- Server: existing server \((.+)\)", r"- 서버: 기존 서버(\1)"),
    (
        r'Capacity: ([\d,]+) seats\. "beyond capacity" = tickets issued − capacity: above zero means seats '
        r"were sold twice\.",
        r"정원: 좌석 \1개. \"정원 초과\" = 발권 수 − 정원. 양수면 같은 좌석을 두 번 판 것이다.",
    ),
    (
        r"(\d+) s per case, writers appending one event per call without pause; one follower in the same "
        r'process\. "never seen" counts events the follower had not received (\d+) s after the writers '
        r"stopped\.",
        r"경우마다 \1초, 쓰기 워커는 쉬지 않고 호출마다 이벤트 하나를 추가한다. 같은 프로세스에 구독자 하나. "
        r'"끝내 못 받음"은 쓰기 워커가 멈추고 \2초 뒤에도 구독자가 받지 못한 이벤트 수다.',
    ),
    (
        r"Median of (\d+) runs on an open store \(warm connection pool and caches\)\.",
        r"열린 저장소(연결 풀과 캐시가 데워진 상태)에서 \1번 실행한 중앙값.",
    ),
    (
        r"([\d,]+) events in streams of (\d+); sizes after VACUUM ANALYZE\. Rows stay under PostgreSQL's "
        r"2 kB TOAST threshold, so no payload is compressed\.",
        r"이벤트 \1개, 스트림마다 \2개. 크기는 VACUUM ANALYZE 뒤에 쟀다. 행이 PostgreSQL의 TOAST 기준인 "
        r"2 kB보다 작아 어떤 페이로드도 압축되지 않는다.",
    ),
    (
        r"Median of (\d+) runs\. The upcaster alone, on in-memory dicts: ([\d.,]+) ms for ([\d,]+) events "
        r"\(([\d.]+) µs each\)\. Differences smaller than the run-to-run noise of a shared machine are not "
        r"meaningful\.",
        r"\1번 실행한 중앙값. 업캐스터만 메모리 안의 dict에 돌리면 이벤트 \3개에 \2 ms(이벤트당 \4 µs). "
        r"공유 머신에서 실행마다 생기는 잡음보다 작은 차이는 의미가 없다.",
    ),
]

HANGUL = re.compile(r"[가-힣]")


def translate_cell(cell: str) -> str:
    """A header or label in Korean; numbers, case names and separators stay as they are."""
    text = cell.strip()
    if text in WORDS:
        return WORDS[text]
    if re.fullmatch(r"[-:]+|[+−-]?[\d,.]+ ?[%×]?|[+−-]?[\d,.]+ ?%|[a-z]+(-[a-z]+)+|ilji", text):
        return text
    for pattern, korean in CELLS:
        if re.fullmatch(pattern, text):
            return re.sub(pattern, korean, text)
    raise ValueError(f"no Korean for table cell {text!r}: add it to WORDS in bench/evaluation_ko.py")


def translate_line(line: str) -> str:
    """One line of an evaluation report in Korean."""
    if line.startswith("|"):
        cells = line.strip().strip("|").split("|")
        return "| " + " | ".join(translate_cell(cell) for cell in cells) + " |"
    if not line.strip():
        return line
    for pattern, korean in LINES:
        if re.fullmatch(pattern, line):
            return re.sub(pattern, korean, line)
    raise ValueError(f"no Korean for the line {line!r}: add a pattern to LINES in bench/evaluation_ko.py")


def korean(text: str) -> str:
    """The Korean twin of a report written by `report()`."""
    return "\n".join(translate_line(line) for line in text.split("\n"))


def twin_path(report: Path) -> Path:
    """docs/assets/evaluation/x.md -> docs/assets/evaluation/x.ko.md."""
    return report.with_name(report.stem + ".ko.md")


def reports(out: Path = OUT_DIR) -> list[Path]:
    """The English reports in a directory (not their twins)."""
    return sorted(p for p in out.glob("*.md") if not p.name.endswith(".ko.md"))


def write_twin(report: Path) -> Path:
    """Write the Korean twin (table, and chart when the report has one) next to a report."""
    twin = twin_path(report)
    twin.write_text(korean(report.read_text(encoding="utf-8")), encoding="utf-8")
    write_chart_twin(report)
    return twin


def main() -> int:
    for report in reports():
        print(f"wrote {write_twin(report)}")
    return 0


# -- charts ----------------------------------------------------------------------------------
#
# The Korean charts are drawn from the table itself (the numbers as printed, so rounded the
# same way), which lets them be redrawn without running a measurement. The English charts are
# drawn by each script from its unrounded results; the two show the same runs.


def table_rows(report: Path) -> list[dict[str, str]]:
    """The report's table as dicts keyed by the English headers."""
    lines = [line for line in report.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        rows.append(dict(zip(headers, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


def number(cell: str) -> float:
    """'1,585' -> 1585.0, '+4,004' -> 4004.0, '19 %' -> 19.0."""
    return float(re.sub(r"[^\d.\-]", "", cell.replace("−", "-")) or 0)


def korean_font() -> str:
    """The name of an installed CJK font for matplotlib (Debian: fonts-noto-cjk)."""
    from matplotlib import font_manager

    for path in sorted(font_manager.findSystemFonts()):
        if "NotoSansCJK-Regular" in path or "NotoSansCJKkr-Regular" in path:
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    raise RuntimeError("no Korean font for the charts: install fonts-noto-cjk (scripts/install-system-deps)")


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _contention(rows: list[dict[str, str]], fig: Any) -> None:
    left, right = fig.subplots(1, 2)
    cases = list(dict.fromkeys(r["case"] for r in rows))
    workers = list(dict.fromkeys(r["workers"] for r in rows))
    by = {(r["case"], r["workers"]): r for r in rows}
    labels = [f"쓰기 워커 {w}개" for w in workers]
    _bars(left, labels, {c: [number(by[c, w]["beyond capacity"]) for w in workers] for c in cases})
    _bars(right, labels, {c: [number(by[c, w]["reservations/s"]) for w in workers] for c in cases})
    left.set_title("정원을 넘겨 발권한 수", fontsize=10)
    right.set_title("초당 예약", fontsize=10)
    left.get_legend().remove()


def _lag(rows: list[dict[str, str]], fig: Any) -> None:
    ax = fig.subplots()
    _bars(
        ax,
        [f"쓰기 워커 {r['writers']}개" for r in rows],
        {"p50": [number(r["lag p50 ms"]) for r in rows], "p99": [number(r["lag p99 ms"]) for r in rows]},
    )
    ax.set_ylabel("밀리초")
    ax.set_title("추가가 끝난 뒤 구독자가 이벤트를 받기까지", fontsize=11)


def _replay(rows: list[dict[str, str]], fig: Any) -> None:
    ax = fig.subplots()
    _bars(
        ax,
        [r["events in stream"] for r in rows],
        {
            "전체 재생": [number(r["full replay ms"]) for r in rows],
            "스냅샷 100개마다(최악의 경우)": [number(r["tail replay ms"]) for r in rows],
        },
    )
    ax.set_yscale("log")
    ax.set_ylabel("밀리초(로그 눈금)")
    ax.set_xlabel("스트림의 이벤트 수")
    ax.set_title("엔터티 하나 불러오기: read_stream + 폴드", fontsize=11)


def _storage(rows: list[dict[str, str]], fig: Any) -> None:
    ax = fig.subplots()
    crud = "CRUD table MiB (1,000 rows)"
    _bars(
        ax,
        [WORDS.get(r["payload"], r["payload"]) for r in rows],
        {
            "이벤트 저장소: 이벤트당 바이트": [number(r["total B/event"]) for r in rows],
            "CRUD: 이벤트 하나 분량의 상태 바이트": [
                number(r[crud]) * 1024 * 1024 / number(r["events"]) for r in rows
            ],
        },
    )
    ax.set_ylabel("바이트")
    ax.set_title(f"이벤트 {rows[0]['events']}개, 스트림마다 10개", fontsize=11)


def _upcast(rows: list[dict[str, str]], fig: Any) -> None:
    ax = fig.subplots()
    labels = ["스키마 2\n업캐스터 없음", "스키마 2\n업캐스터 통과", "스키마 1\n업캐스터 통과"]
    _bars(ax, labels, {"재생 ms": [number(r["replay ms"]) for r in rows]})
    ax.set_ylabel("밀리초")
    ax.set_title("이벤트 10,000개의 read_stream + 폴드", fontsize=11)


CHARTS: dict[str, tuple[tuple[float, float], Callable[[list[dict[str, str]], Any], None]]] = {
    "contention": ((10, 3.8), _contention),
    "lag": ((7.5, 3.6), _lag),
    "replay": ((7.5, 3.6), _replay),
    "storage": ((7.5, 3.6), _storage),
    "upcast": ((7.5, 3.6), _upcast),
}


def chart_twin_path(report: Path) -> Path:
    """docs/assets/evaluation/x.md -> docs/assets/evaluation/x.ko.png."""
    return report.with_name(report.stem + ".ko.png")


def write_chart_twin(report: Path) -> Path | None:
    """Draw the Korean chart of a report from its table, if the report has a chart."""
    if report.stem not in CHARTS:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.family"] = korean_font()
    plt.rcParams["axes.unicode_minus"] = False
    size, draw = CHARTS[report.stem]
    fig = plt.figure(figsize=size, dpi=110)
    draw(table_rows(report), fig)
    fig.tight_layout()
    out = chart_twin_path(report)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


if __name__ == "__main__":
    sys.exit(main())
