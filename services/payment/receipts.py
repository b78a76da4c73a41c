"""The electronic receipt (biên lai điện tử) as a PDF: receipt number, payer, amount, fees, agency.

Rendered with fpdf2 and a Unicode TrueType font (DejaVu Sans from Debian's
``fonts-dejavu-core``) so Vietnamese prints right. fpdf2 reads the font lazily and embeds only
the glyphs used, so a receipt costs ~40 ms of CPU; it is rendered once per receipt (the bytes
are kept), on its first request (the dossier service fetching it), never while a notification
is handled. Even so, 40 ms on the event loop would stall every other request of the process,
and a real thread (``eventlet.tpool``) cannot be used: fontTools logs, and the process's
logging locks are green ones a foreign thread cannot take. So ``Renderer`` keeps one child
process (``python -m services.payment.receipts``: JSON details in, base64 PDF out, a line
each) that renders on another core while the event loop waits on its pipe; the child reads
the font once and exits when its parent goes.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from portal_common import config

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))
logging.getLogger("fontTools").setLevel(logging.WARNING)  # it logs every subsetting step at INFO


@functools.cache
def font_path() -> str | None:
    """DejaVu Sans (``RECEIPT_FONT`` names another TTF); None: the core font, without diacritics."""
    wanted = config.env("RECEIPT_FONT", None, "payment")
    for candidate in ([wanted] if wanted else []) + [f"{d}/DejaVuSans.ttf" for d in FONT_DIRS]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " đồng"


def render(details: dict[str, Any]) -> bytes:
    """The receipt's PDF bytes (the same details always give the same text)."""
    from fpdf import FPDF  # imported here: only the processes that render pay for it

    pdf = FPDF()
    issued = dt.datetime.fromisoformat(details["paid_at"])
    pdf.set_creation_date(issued)
    pdf.set_title(f"Biên lai {details['receipt_no']}")
    pdf.add_page()
    font = font_path()
    if font:
        pdf.add_font("DejaVu", "", font)
        family = "DejaVu"
    else:  # pragma: no cover - the image ships DejaVu
        family = "Helvetica"

    def text(value: str) -> str:
        return value if font else value.encode("ascii", "replace").decode()

    def line(value: str, size: int = 11, height: float = 7) -> None:
        pdf.set_font(family, size=size)
        pdf.multi_cell(0, height, text(value), new_x="LMARGIN", new_y="NEXT")

    line("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM - Độc lập - Tự do - Hạnh phúc", 10)
    line("BIÊN LAI THU PHÍ, LỆ PHÍ (ĐIỆN TỬ)", 16, 10)
    line(f"Số biên lai: {details['receipt_no']}")
    line(f"Ngày thu: {issued.astimezone(LOCAL_TZ).strftime('%d/%m/%Y %H:%M')}")
    line(f"Cơ quan thu: {details.get('agency_name') or details.get('agency_code') or ''}")
    line(f"Người nộp: {details.get('payer_name') or ''}")
    line(f"Hồ sơ: {details['dossier_code']}")
    line("Khoản thu:")
    for fee in details.get("fees", []):
        copies = f" x {fee['copies']}" if fee.get("copies", 1) > 1 else ""
        line(f"  - {fee['name']}{copies}: {vnd(int(fee['amount']))}")
    line(f"Tổng số tiền: {vnd(int(details['amount']))} ({details['amount']} VND)", 12)
    line(f"Mã giao dịch: {details['transaction_no']} - tham chiếu {details['reference']}", 9)
    return bytes(pdf.output())


class Renderer:
    """Receipts rendered by a child process, one at a time, off the event loop."""

    def __init__(self) -> None:
        from eventlet.semaphore import Semaphore

        self._proc: Any = None
        self._lock = Semaphore()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def render(self, details: dict[str, Any]) -> bytes:
        from eventlet.green import subprocess

        request = json.dumps(details, default=str).encode() + b"\n"
        with self._lock:
            for _attempt in range(2):
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = subprocess.Popen([sys.executable, "-m", "services.payment.receipts"],
                                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                try:
                    self._proc.stdin.write(request)
                    self._proc.stdin.flush()
                    line = self._proc.stdout.readline()
                    if line.strip():
                        return base64.b64decode(line)
                except OSError:
                    pass
                self.close()  # it died: start another
        raise RuntimeError("the receipt renderer failed twice")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


RENDERER: Renderer | None = None


def renderer() -> Renderer:
    """The process's renderer (its child started on first use)."""
    global RENDERER
    if RENDERER is None:
        RENDERER = Renderer()
    return RENDERER


def serve() -> None:
    """The renderer child: one JSON line in, one base64 PDF line out, until stdin closes."""
    for line in sys.stdin.buffer:
        if line.strip():
            sys.stdout.buffer.write(base64.b64encode(render(json.loads(line))) + b"\n")
            sys.stdout.buffer.flush()


if __name__ == "__main__":
    serve()
