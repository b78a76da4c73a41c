"""A synthetic catalog for benchmarks: ``load(dsn, n)`` adds procedures until the catalog
holds at least ``n``, built from the seed's real vocabulary (verbs, subjects, qualifiers,
fields, agency kinds) so names read like real ones and search behaves as it would on the
national catalog. Every generated procedure is ``illustrative`` and coded ``G.nnnnnn``; each
is published like any other (row, history, ``ProcedurePublished`` event).

``python -m services.catalog.generate DSN [N]`` does the same from a shell.
"""

from __future__ import annotations

import random
import sys

from portal_common.db import Database
from portal_common.eventstore import EventStore
from portal_common.eventstore.events import EventContext, NewEvent
from services.catalog import repository as repo
from services.catalog import seed_data
from services.catalog.domain.search import search_documents_text

VERBS = ["Cấp", "Cấp lại", "Cấp đổi", "Gia hạn", "Điều chỉnh", "Thu hồi", "Đăng ký", "Xác nhận",
         "Thẩm định", "Công nhận", "Đăng ký thay đổi", "Hỗ trợ", "Phê duyệt", "Thông báo"]
QUALIFIERS = ["", "đối với tổ chức", "đối với cá nhân", "có yếu tố nước ngoài", "tại cấp xã",
              "tại cấp tỉnh", "cho doanh nghiệp nhỏ và vừa", "trong khu công nghiệp", "qua dịch vụ bưu chính",
              "cho người khuyết tật", "cho hộ gia đình", "trường hợp bị mất, hư hỏng"]


def _subjects() -> list[tuple[str, dict]]:
    """Noun phrases taken from the seed names, with the seed procedure they came from."""
    out = []
    for doc in seed_data.procedures():
        words = doc["name"].split()
        for verb in sorted(VERBS, key=len, reverse=True):
            if doc["name"].startswith(verb + " "):
                words = words[len(verb.split()):]
                break
        out.append((" ".join(words), doc))
    return out


def procedures(n: int, start: int = 1, seed: int = 7) -> list[dict]:
    """``n`` synthetic procedure documents (NewProcedureBody shape)."""
    rnd = random.Random(seed)
    subjects = _subjects()
    out = []
    for i in range(start, start + n):
        subject, base = rnd.choice(subjects)
        name = " ".join(p for p in (rnd.choice(VERBS), subject, rnd.choice(QUALIFIERS)) if p)
        doc = dict(base)
        doc.update(
            code=f"G.{i:06d}", name=name[:500], processing_days=rnd.choice([1, 3, 5, 7, 10, 15, 20, 30]),
            online_level=rnd.choice(["full", "full", "partial", "none"]), illustrative=True, next_procedure=None,
            fees=[] if rnd.random() < 0.4 else [{"name": "Lệ phí", "amount_vnd": rnd.choice([10000, 50000, 100000])}],
            description=f"{name}: thủ tục minh họa sinh tự động cho đo hiệu năng.",
        )
        out.append(doc)
    return out


def load(dsn: str, n: int) -> int:
    """Publish synthetic procedures until the catalog holds ``n``; returns how many were added."""
    db = Database(dsn, "catalog", size=1, application_name="catalog-generate")
    store = EventStore(db)
    ctx = EventContext(correlation_id="generate")
    try:
        with db.transaction() as cur:
            cur.execute("SELECT count(*) AS n, count(*) FILTER (WHERE code LIKE 'G.%%') AS g FROM procedures")
            row = cur.fetchone()
            missing = max(0, n - row["n"])
            for doc in procedures(missing, start=row["g"] + 1):
                doc = dict(doc, version=1, status="published")
                repo.save_procedure(cur, doc, search_documents_text(doc), new=True)
                store.append(f"procedure-{doc['code']}", 0, [NewEvent("ProcedurePublished", doc)],
                             stream_type="procedure", context=ctx, cursor=cur.connection.cursor())
            repo.refresh_search_words(cur)
            cur.execute("ANALYZE procedures")
        return missing
    finally:
        db.close()


if __name__ == "__main__":  # pragma: no cover - a shell convenience
    print(load(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000))
