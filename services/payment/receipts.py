"""The electronic receipt (biên lai điện tử) as a PDF: receipt number, payer, amount, fees, agency.

Rendered with fpdf2 and a Unicode TrueType font (DejaVu Sans from Debian's
``fonts-dejavu-core``) so Vietnamese prints right. Rendering costs tens of milliseconds of CPU,
which would stall every green thread of the process, so it runs in a real thread
(``eventlet.tpool``), once per receipt (the bytes are kept), on first request rather than
while a notification is handled. The font file is located once per process.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from portal_common import config

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
LOCAL_TZ = dt.timezone(dt.timedelta(hours=7))


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


def render_in_thread(details: dict[str, Any]) -> bytes:
    """``render`` off the green threads' hub (a real OS thread)."""
    from eventlet import tpool

    return tpool.execute(render, details)
